// @vitest-environment node
import { describe, expect, it } from "vitest";
import { collectParameters, formFields, type JsonSchema } from "../src/tasks";

// As pydantic writes it for SpeechParameters/TranscriptionParameters (Optional fields are anyOf with null).
const SCHEMA: JsonSchema = {
  type: "object",
  properties: {
    voice: { anyOf: [{ type: "string", maxLength: 64 }, { type: "null" }], title: "Voice", description: "A voice." },
    speed: { anyOf: [{ type: "number", minimum: 0.25, maximum: 4 }, { type: "null" }], title: "Speed" },
    width: { anyOf: [{ type: "integer", minimum: 64, maximum: 8192, multipleOf: 8 }, { type: "null" }], title: "Width" },
    strength: { anyOf: [{ type: "number", exclusiveMinimum: 0, maximum: 1 }, { type: "null" }], title: "Strength" },
    audio_format: { anyOf: [{ enum: ["wav", "mp3"], type: "string" }, { type: "null" }], title: "Audio Format" },
    translate: { type: "boolean", default: false, title: "Translate" },
    stop: { anyOf: [{ type: "array", items: { type: "string" } }, { type: "null" }] },
    tools: { anyOf: [{ type: "array" }, { type: "null" }] },
    tool_choice: { anyOf: [{ enum: ["none", "auto"], type: "string" }, { type: "null" }], "x-form": false },
  },
};

describe("formFields", () => {
  it("turns scalar properties into typed fields with their limits and choices", () => {
    const fields = Object.fromEntries(formFields(SCHEMA).map((field) => [field.name, field]));
    expect(Object.keys(fields)).toEqual(["voice", "speed", "width", "strength", "audio_format", "translate"]);
    expect(fields.voice).toMatchObject({ kind: "string", maxLength: 64, label: "Voice", help: "A voice." });
    expect(fields.speed).toMatchObject({ kind: "number", min: 0.25, max: 4 });
    expect(fields.width).toMatchObject({ kind: "integer", min: 64, max: 8192, step: 8 });
    expect(fields.strength).toMatchObject({ kind: "number", min: 0, max: 1 });
    expect(fields.audio_format).toMatchObject({ kind: "choice", choices: ["wav", "mp3"] });
    expect(fields.translate).toMatchObject({ kind: "boolean", default: false });
  });
});

describe("collectParameters", () => {
  it("sends only what was given, typed", () => {
    const fields = formFields(SCHEMA);
    const values = { voice: "", speed: "1.5", width: "512.0", audio_format: "mp3", translate: false, strength: null };
    expect(collectParameters(fields, values)).toEqual({ speed: 1.5, width: 512, audio_format: "mp3" });
    expect(collectParameters(fields, { translate: true })).toEqual({ translate: true });
  });
});
