// Model output as HTML: markdown rendered by markdown-it (raw HTML off), then sanitized by DOMPurify, so an
// answer holding <img onerror=...> or a javascript: link stays inert.
import DOMPurify from "dompurify";
import MarkdownIt from "markdown-it";

const markdown = new MarkdownIt({ html: false, linkify: true, breaks: true });

export function renderMarkdown(text: string): string {
  return DOMPurify.sanitize(markdown.render(text), { USE_PROFILES: { html: true } });
}

/** ``<think>`` blocks apart from the answer (the server already splits them; this also covers a stream). */
export function splitThoughts(text: string): { answer: string; thoughts: string } {
  const thoughts: string[] = [];
  const answer = text.replace(/<think>([\s\S]*?)(<\/think>|$)/g, (_, inner: string) => {
    thoughts.push(inner.trim());
    return "";
  });
  return { answer: answer.trim(), thoughts: thoughts.join("\n\n") };
}
