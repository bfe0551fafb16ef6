// Server-sent events from a byte stream: events may be split at any byte (even inside a UTF-8 character),
// several may come in one read; comments (": keep-alive") are skipped.

export interface SseEvent {
  event: string | null;
  data: string;
}

export class SseParser {
  private decoder = new TextDecoder("utf-8");
  private buffer = "";

  /** The complete events in ``bytes`` (and what earlier calls left unfinished). */
  feed(bytes: Uint8Array): SseEvent[] {
    this.buffer += this.decoder.decode(bytes, { stream: true });
    const events: SseEvent[] = [];
    let end: number;
    while ((end = this.boundary()) >= 0) {
      const block = this.buffer.slice(0, end);
      this.buffer = this.buffer.slice(end).replace(/^(\r?\n){2}/, "");
      const event = parseBlock(block);
      if (event) events.push(event);
    }
    return events;
  }

  private boundary(): number {
    const match = /\r?\n\r?\n/.exec(this.buffer);
    return match ? match.index : -1;
  }
}

function parseBlock(block: string): SseEvent | null {
  let event: string | null = null;
  const data: string[] = [];
  for (const line of block.split(/\r?\n/)) {
    if (!line || line.startsWith(":")) continue;
    const colon = line.indexOf(":");
    const field = colon < 0 ? line : line.slice(0, colon);
    const value = colon < 0 ? "" : line.slice(colon + 1).replace(/^ /, "");
    if (field === "data") data.push(value);
    else if (field === "event") event = value;
  }
  return data.length ? { event, data: data.join("\n") } : null;
}
