/** Types for the parts of mpd-parser (video.js's DASH manifest parser, a dev dependency) the tests use. */
declare module "mpd-parser" {
  export interface ParsedSegment {
    uri: string;
    duration: number;
    timeline: number;
    presentationTime: number;
    number: number;
    discontinuity?: boolean;
    map?: { uri: string };
  }
  export interface ParsedManifest {
    playlists: { segments: ParsedSegment[]; attributes: Record<string, unknown> }[];
  }
  export function parse(xml: string, o?: { manifestUri?: string; NOW?: number }): ParsedManifest;
}
