// Files, pasted images, recordings and earlier outputs as input_data items (base64 with their mime type).
import { blobBehind, type InputItem } from "./api";

export interface Attachment {
  role: string; // input_image, mask_image, input_audio
  name: string;
  mime: string;
  data: string; // base64
}

export function dataUrl(attachment: Attachment): string {
  return `data:${attachment.mime};base64,${attachment.data}`;
}

function readAsDataUrl(blob: Blob): Promise<string> {
  return new Promise((resolve, reject) => {
    const reader = new FileReader();
    reader.onload = () => resolve(String(reader.result));
    reader.onerror = () => reject(reader.error);
    reader.readAsDataURL(blob);
  });
}

function parseDataUrl(url: string): { mime: string; data: string } | null {
  const match = /^data:([^;,]*)(?:;[^,]*)?;base64,(.*)$/s.exec(url);
  return match ? { mime: match[1] || "application/octet-stream", data: match[2] } : null;
}

export async function attach(blob: Blob, role: string, name: string): Promise<Attachment> {
  const parsed = parseDataUrl(await readAsDataUrl(blob));
  if (parsed === null) throw new Error(`${name} could not be read`);
  // A recording's type may carry codecs ("audio/webm;codecs=opus"): the item's mime type is the media type.
  const mime = (blob.type || parsed.mime).split(";")[0];
  return { role, name, mime, data: parsed.data };
}

/** An output shown in the chat (a data: URL, or a blob: URL made from an artifact) as an input again. */
export async function attachOutput(src: string, role: string, name: string): Promise<Attachment> {
  const parsed = parseDataUrl(src);
  if (parsed) return { role, name, mime: parsed.mime, data: parsed.data };
  const blob = blobBehind(src);
  if (!blob) throw new Error("this output is no longer in the browser; make it again");
  return attach(blob, role, name);
}

const KIND: Record<string, string> = { image: "image", audio: "audio", video: "audio" };

export function inputItem(attachment: Attachment): InputItem {
  const kind = KIND[attachment.mime.split("/")[0]] ?? "binary";
  return { type: kind, role: attachment.role, data: attachment.data, mime_type: attachment.mime };
}

const EXTENSIONS: Record<string, string> = {
  "image/png": "png",
  "image/jpeg": "jpg",
  "image/webp": "webp",
  "image/gif": "gif",
  "audio/wav": "wav",
  "audio/x-wav": "wav",
  "audio/mpeg": "mp3",
  "audio/ogg": "ogg",
  "audio/flac": "flac",
  "audio/L16": "pcm",
  "video/mp4": "mp4",
  "video/webm": "webm",
};

/** A download name for an output, its extension from its media type. */
export function downloadName(src: string, type: string): string {
  const mime = parseDataUrl(src)?.mime ?? blobBehind(src)?.type ?? "";
  return `${type}.${EXTENSIONS[mime] ?? "bin"}`;
}
