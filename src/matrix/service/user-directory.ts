/**
 * The user directory (spec client-server "User directory", users.yaml): users who share a joined room with the
 * requester or are joined to a public room, or every user with matrix.userDirectory.searchAllUsers (Synapse's
 * user_directory.search_all_users); matched on the localpart and display name by word prefix.
 */
import type { Homeserver } from "../hs.ts";
import { searchWords } from "../store/common.ts";

export interface DirectoryUser {
  user_id: string;
  display_name?: string;
  avatar_url?: string;
}

export const MAX_DIRECTORY_LIMIT = 1000;

export async function searchUserDirectory(
  hs: Homeserver,
  requester: string,
  term: string,
  limit: number,
): Promise<{ limited: boolean; results: DirectoryUser[] }> {
  const n = Math.min(limit, MAX_DIRECTORY_LIMIT);
  const rows = await hs.store.search.searchUsers({
    words: searchWords(term),
    requester,
    all: hs.config.userDirectory.searchAllUsers,
    limit: n + 1,
  });
  const results = rows.slice(0, n).map((u) => {
    const r: DirectoryUser = { user_id: u.userId };
    if (u.displayname !== null) r.display_name = u.displayname;
    if (u.avatarUrl !== null) r.avatar_url = u.avatarUrl;
    return r;
  });
  return { limited: rows.length > n, results };
}
