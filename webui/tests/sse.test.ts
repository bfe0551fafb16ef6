import { describe, expect, it } from "vitest";
import { SseParser } from "../src/sse";

const encoder = new TextEncoder();

describe("SseParser", () => {
  it("parses events split at every byte, multi-byte characters included", () => {
    const stream = encoder.encode(': keep-alive\n\ndata: {"type":"chunk","content":"héllo 🦊"}\n\ndata: {"type":"final"}\n\n');
    const parser = new SseParser();
    const events = [];
    for (const byte of stream) events.push(...parser.feed(new Uint8Array([byte])));
    expect(events.map((event) => JSON.parse(event.data))).toEqual([
      { type: "chunk", content: "héllo 🦊" },
      { type: "final" },
    ]);
  });

  it("keeps event names and joins multi-line data, with CRLF line ends", () => {
    const parser = new SseParser();
    const events = parser.feed(encoder.encode("event: message_start\r\ndata: a\r\ndata: b\r\n\r\nevent: x\n"));
    expect(events).toEqual([{ event: "message_start", data: "a\nb" }]);
    expect(parser.feed(encoder.encode("data: c\n\n"))).toEqual([{ event: "x", data: "c" }]);
  });
});
