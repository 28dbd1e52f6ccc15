/** Types for the parts of m3u8-parser (video.js's HLS playlist parser, a dev dependency) the tests use. */
declare module "m3u8-parser" {
  export interface ParsedVariant {
    uri: string;
    attributes: {
      BANDWIDTH?: number;
      CODECS?: string;
      "FRAME-RATE"?: number;
      RESOLUTION?: { width: number; height: number };
    };
  }
  export interface ParsedPlaylist {
    playlists?: ParsedVariant[];
    segments: { uri: string; duration: number }[];
  }
  export class Parser {
    push(text: string): void;
    end(): void;
    manifest: ParsedPlaylist;
  }
}
