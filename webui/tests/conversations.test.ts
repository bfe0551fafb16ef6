// @vitest-environment jsdom
import { beforeEach, describe, expect, it, vi } from "vitest";
import { inputData, loadConversations, newConversation, saveConversations } from "../src/conversations";

beforeEach(() => localStorage.clear());

describe("conversations", () => {
  it("round-trip through the browser's storage; blob: media do not survive a reload", () => {
    const conversation = newConversation();
    conversation.messages.push(
      { role: "user", text: "draw", media: [{ type: "image", src: "data:image/png;base64,AAAA" }] },
      { role: "assistant", text: "", media: [{ type: "image", src: "blob:http://x/1" }] },
    );
    expect(saveConversations([conversation])).toBe(true);
    const [loaded] = loadConversations();
    expect(loaded.messages[0].media?.[0].src).toBe("data:image/png;base64,AAAA");
    expect(loaded.messages[1].media?.[0].src).toBe("");
  });

  it("are kept without their media when the storage is full", () => {
    const conversation = newConversation();
    conversation.messages.push({ role: "user", text: "hi", media: [{ type: "audio", src: "data:audio/wav;base64,AAAA" }] });
    const original = Storage.prototype.setItem;
    const setItem = vi.spyOn(Storage.prototype, "setItem").mockImplementation(function (this: Storage, key, value) {
      if (value.includes("base64")) throw new DOMException("full", "QuotaExceededError");
      original.call(this, key, value);
    });
    expect(saveConversations([conversation])).toBe(false);
    setItem.mockRestore();
    expect(loadConversations()[0].messages[0]).toMatchObject({ text: "hi", media: [{ type: "audio", src: "" }] });
  });

  it("become input_data: the turns in order, failed answers left out", () => {
    const turns = inputData([
      { role: "user", text: "a" },
      { role: "assistant", text: "b" },
      { role: "user", text: "c" },
      { role: "assistant", text: "partial", error: "500: boom" },
    ]);
    expect(turns).toEqual([
      { type: "text", role: "user_prompt", data: "a" },
      { type: "text", role: "assistant_reply", data: "b" },
      { type: "text", role: "user_prompt", data: "c" },
    ]);
  });
});
