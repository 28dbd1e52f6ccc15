/**
 * The media service as an origin: when it sends no Cache-Control, playlists and manifests live 1 s (they change
 * every part/segment; LL-HLS blocking requests carry `_HLS_msn`/`_HLS_part` in the key, so each is its own object
 * and concurrent ones are coalesced) and segments and parts are immutable (a name is never reused for new bytes).
 */
const PLAYLIST = /\.(m3u8|mpd)(\?|$)/;
const SEGMENT = /\.(m4s|ts|mp4|m4a|m4v|aac|vtt)(\?|$)/;

export function mediaDefaults(path: string, status: number, headers: Record<string, string | string[]>): void {
  if (status !== 200 || headers["cache-control"] !== undefined) return;
  if (PLAYLIST.test(path)) headers["cache-control"] = "public, max-age=1, stale-while-revalidate=1";
  else if (SEGMENT.test(path)) headers["cache-control"] = "public, max-age=31536000, immutable";
}
