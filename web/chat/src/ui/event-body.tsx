/** How one event reads in the timeline: text, image, file, or a one-line state change. */
import type { MatrixClient, MatrixEvent } from "matrix-js-sdk";
import { useEffect, useState } from "preact/hooks";
import { errorText, formatSize } from "../format.ts";
import { blobUrl, download, type MediaRef, mediaRefOf } from "../media.ts";
import { isEdit, messageText } from "../relations.ts";
import { DownloadIcon, LockIcon } from "./icons.tsx";

const STATE_TYPES = new Set(["m.room.create", "m.room.member", "m.room.name", "m.room.topic", "m.room.encryption"]);

/** Events worth a line: messages (also undecryptable ones) and the state changes people care about; edits
 * show on the message they edit. */
export const isShown = (e: MatrixEvent): boolean =>
  !e.isRedacted() &&
  !isEdit(e) &&
  (e.getType() === "m.room.message" || e.getType() === "m.room.encrypted" || STATE_TYPES.has(e.getType()));

function stateLine(e: MatrixEvent): string {
  const who = e.sender?.name ?? e.getSender();
  const c = e.getContent();
  switch (e.getType()) {
    case "m.room.create":
      return `${who} created the room`;
    case "m.room.name":
      return `${who} named the room “${c.name ?? ""}”`;
    case "m.room.topic":
      return `${who} set the topic: ${c.topic ?? ""}`;
    case "m.room.encryption":
      return `${who} turned on end-to-end encryption`;
    case "m.room.member": {
      const target = e.target?.name ?? e.getStateKey();
      const before = e.getPrevContent().membership;
      switch (c.membership) {
        case "join":
          return before === "join" ? `${target} changed their profile` : `${target} joined`;
        case "invite":
          return `${who} invited ${target}`;
        case "leave":
          return e.getSender() === e.getStateKey() ? `${target} left` : `${who} removed ${target}`;
        case "ban":
          return `${who} banned ${target}`;
        default:
          return `${target}: ${c.membership}`;
      }
    }
  }
  return e.getType();
}

export function EventBody({ client, event }: { client: MatrixClient; event: MatrixEvent }) {
  if (event.isDecryptionFailure())
    return (
      <p class="body undecryptable">
        <LockIcon /> Unable to decrypt this message.
      </p>
    );
  if (event.getType() === "m.room.encrypted")
    return (
      <p class="body undecryptable">
        <LockIcon /> Decrypting…
      </p>
    );
  if (event.getType() !== "m.room.message") return <p class="body">{stateLine(event)}</p>;
  const c = event.getContent();
  const ref = mediaRefOf(c);
  const name = typeof c.body === "string" ? c.body : "file";
  if (ref && c.msgtype === "m.image") return <Image client={client} media={ref} alt={name} info={c.info} />;
  if (ref && (c.msgtype === "m.file" || c.msgtype === "m.audio" || c.msgtype === "m.video"))
    return <FileButton client={client} media={ref} name={name} size={c.info?.size} />;
  if (c.msgtype === "m.emote")
    return (
      <p class="body emote">
        * {event.sender?.name} {name}
      </p>
    );
  return <p class={c.msgtype === "m.notice" ? "body notice-msg" : "body"}>{messageText(event)}</p>;
}

function Image(props: { client: MatrixClient; media: MediaRef; alt: string; info?: { w?: number; h?: number } }) {
  const [src, setSrc] = useState<string | null>(null);
  const [error, setError] = useState("");
  useEffect(() => {
    blobUrl(props.client, props.media).then(setSrc, (e) => setError(errorText(e)));
  }, [props.media.mxc]);
  if (error)
    return (
      <p class="body error">
        Image “{props.alt}” could not be loaded: {error}
      </p>
    );
  return (
    <figure class="body image">
      {src ? (
        <img src={src} alt={props.alt} width={props.info?.w} height={props.info?.h} />
      ) : (
        <div class="placeholder" role="img" aria-label={`Loading image ${props.alt}`} />
      )}
      <figcaption>
        <FileButton client={props.client} media={props.media} name={props.alt} />
      </figcaption>
    </figure>
  );
}

function FileButton(props: { client: MatrixClient; media: MediaRef; name: string; size?: number }) {
  const [error, setError] = useState("");
  const size = formatSize(props.size);
  return (
    <p class="body file">
      <button
        type="button"
        class="file-btn"
        onClick={() => download(props.client, props.media, props.name).catch((e) => setError(errorText(e)))}
      >
        <DownloadIcon /> Download {props.name}
        {size && <span class="size"> ({size})</span>}
      </button>
      {error && (
        <span class="error" role="alert">
          {" "}
          {error}
        </span>
      )}
    </p>
  );
}
