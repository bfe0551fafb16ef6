// @vitest-environment node
import { afterEach, describe, expect, it, vi } from "vitest";
import { Api, ApiError } from "../src/api";

afterEach(() => vi.unstubAllGlobals());

function byteStream(text: string): ReadableStream<Uint8Array> {
  const bytes = new TextEncoder().encode(text);
  let index = 0;
  return new ReadableStream({
    pull(controller) {
      if (index < bytes.length) controller.enqueue(bytes.slice(index, (index += 3))); // split mid-character too
      else controller.close();
    },
  });
}

describe("Api", () => {
  it("streams /api/v1/generate with the key in a header, never in the URL", async () => {
    const fetch = vi.fn(async () => new Response(byteStream('data: {"type":"chunk","content":"é"}\n\ndata: {"type":"final","content":[]}\n\n')));
    vi.stubGlobal("fetch", fetch);
    const chunks = [];
    for await (const chunk of new Api("secret-key").stream({ input_data: [] }, new AbortController().signal)) chunks.push(chunk);
    expect(chunks).toEqual([{ type: "chunk", content: "é" }, { type: "final", content: [] }]);
    const [url, init] = fetch.mock.calls[0] as unknown as [string, RequestInit];
    expect(url).toBe("/api/v1/generate");
    expect(url).not.toContain("secret-key");
    expect((init.headers as Record<string, string>)["X-API-Key"]).toBe("secret-key");
    expect(JSON.parse(String(init.body))).toMatchObject({ stream: true });
  });

  it("turns error answers into ApiError with the status and the server's message, in any API's shape", async () => {
    vi.stubGlobal("fetch", vi.fn(async () => new Response(JSON.stringify({ detail: "no such personality" }), { status: 404 })));
    await expect(new Api("k").get("/api/v1/x")).rejects.toEqual(new ApiError(404, "no such personality"));
    vi.stubGlobal("fetch", vi.fn(async () => new Response(JSON.stringify({ error: { message: "bad key" } }), { status: 401 })));
    const error = await new Api("k").tasks().catch((caught: unknown) => caught);
    expect(error).toBeInstanceOf(ApiError);
    expect(error).toMatchObject({ status: 401, message: "bad key" });
    vi.stubGlobal("fetch", vi.fn(async () => new Response("<html>", { status: 502, statusText: "Bad Gateway" })));
    await expect(new Api("k").get("/x")).rejects.toMatchObject({ status: 502, message: "Bad Gateway" });
  });

  it("lists a binding's models by name, with the instance name escaped in the path", async () => {
    const fetch = vi.fn(async () => new Response(JSON.stringify({ models: [{ name: "a.gguf" }, { name: "b" }] })));
    vi.stubGlobal("fetch", fetch);
    expect(await new Api("k").models("my/inst")).toEqual(["a.gguf", "b"]);
    expect((fetch.mock.calls[0] as unknown as [string])[0]).toBe("/api/v1/list_available_models/my%2Finst");
  });
});
