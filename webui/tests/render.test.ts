// @vitest-environment node
import { describe, expect, it } from "vitest";
import { splitThoughts } from "../src/render";

describe("splitThoughts", () => {
  it("moves think blocks apart, closed or still open", () => {
    expect(splitThoughts("<think>plan</think>Answer")).toEqual({ answer: "Answer", thoughts: "plan" });
    expect(splitThoughts("Hi <think>still thinking")).toEqual({ answer: "Hi", thoughts: "still thinking" });
  });
});
