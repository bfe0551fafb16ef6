// @vitest-environment jsdom
import { describe, expect, it } from "vitest";
import { renderMarkdown, splitThoughts } from "../src/render";

describe("splitThoughts", () => {
  it("moves think blocks apart, closed or still open", () => {
    expect(splitThoughts("<think>plan</think>Answer")).toEqual({ answer: "Answer", thoughts: "plan" });
    expect(splitThoughts("Hi <think>still thinking")).toEqual({ answer: "Hi", thoughts: "still thinking" });
  });
});

function dom(html: string): HTMLElement {
  const element = document.createElement("div");
  element.innerHTML = html;
  return element;
}

describe("renderMarkdown", () => {
  it("keeps markup and links that try to run script inert", () => {
    const element = dom(renderMarkdown('<img src=x onerror="alert(1)"> [x](javascript:alert(2)) <a href="#" onclick="f()">a</a> **b**'));
    expect(element.querySelector("img")).toBeNull(); // raw HTML is text, not markup
    expect(element.querySelector("[onerror], [onclick]")).toBeNull();
    expect([...element.querySelectorAll("a")].some((a) => a.getAttribute("href")?.startsWith("javascript"))).toBe(false);
    expect(element.querySelector("strong")?.textContent).toBe("b");
  });

  it("highlights code blocks of a known language and gives each a copy button", () => {
    const element = dom(renderMarkdown("```python\ndef f(): return 1\n```\n\n```\nplain <b>text</b>\n```"));
    const blocks = element.querySelectorAll("div.code");
    expect(blocks).toHaveLength(2);
    expect(blocks[0].querySelector("button.copy")?.getAttribute("aria-label")).toBe("Copy code");
    expect(blocks[0].querySelector("span.hljs-keyword")?.textContent).toBe("def");
    expect(blocks[0].querySelector("code")?.textContent).toBe("def f(): return 1\n");
    expect(blocks[1].querySelector("b")).toBeNull();
    expect(blocks[1].querySelector("code")?.textContent).toBe("plain <b>text</b>\n");
  });
});
