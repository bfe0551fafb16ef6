// Model output as HTML: markdown rendered by markdown-it (raw HTML off), code highlighted by highlight.js, then
// everything sanitized by DOMPurify, so an answer holding <img onerror=...> or a javascript: link stays inert.
// Each code block carries a copy button (the chat handles its clicks).
import DOMPurify from "dompurify";
import hljs from "highlight.js/lib/core";
import bash from "highlight.js/lib/languages/bash";
import c from "highlight.js/lib/languages/c";
import cpp from "highlight.js/lib/languages/cpp";
import csharp from "highlight.js/lib/languages/csharp";
import css from "highlight.js/lib/languages/css";
import diff from "highlight.js/lib/languages/diff";
import go from "highlight.js/lib/languages/go";
import java from "highlight.js/lib/languages/java";
import javascript from "highlight.js/lib/languages/javascript";
import json from "highlight.js/lib/languages/json";
import kotlin from "highlight.js/lib/languages/kotlin";
import markdownLanguage from "highlight.js/lib/languages/markdown";
import php from "highlight.js/lib/languages/php";
import python from "highlight.js/lib/languages/python";
import ruby from "highlight.js/lib/languages/ruby";
import rust from "highlight.js/lib/languages/rust";
import shell from "highlight.js/lib/languages/shell";
import sql from "highlight.js/lib/languages/sql";
import swift from "highlight.js/lib/languages/swift";
import typescript from "highlight.js/lib/languages/typescript";
import xml from "highlight.js/lib/languages/xml";
import yaml from "highlight.js/lib/languages/yaml";
import MarkdownIt from "markdown-it";

// The languages models write most; others stay plain (escaped) text.
const LANGUAGES = { bash, c, cpp, csharp, css, diff, go, java, javascript, json, kotlin, markdown: markdownLanguage, php, python, ruby, rust, shell, sql, swift, typescript, xml, yaml };
for (const [name, language] of Object.entries(LANGUAGES)) hljs.registerLanguage(name, language);

const markdown: MarkdownIt = new MarkdownIt({
  html: false,
  linkify: true,
  breaks: true,
  highlight(code: string, language: string): string {
    if (!language || !hljs.getLanguage(language)) return ""; // markdown-it escapes it as plain text
    return hljs.highlight(code, { language, ignoreIllegals: true }).value;
  },
});

const fence = markdown.renderer.rules.fence!;
markdown.renderer.rules.fence = (tokens, index, options, env, self) =>
  `<div class="code"><button type="button" class="copy" aria-label="Copy code">Copy</button>${fence(tokens, index, options, env, self)}</div>`;

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
