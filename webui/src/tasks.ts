// The generation tasks as the server describes them (GET /api/v1/list_tasks), and the parameter form fields
// built from each task's JSON Schema: the UI holds no copy of the parameters, their limits or their choices.

export interface TaskInfo {
  description: string;
  output: "text" | "image" | "audio" | "video";
  needs_prompt: boolean;
  required_inputs: string[];
  optional_inputs: string[];
  default_binding: string | null;
  bindings: string[];
  parameters: JsonSchema;
}

export interface JsonSchema {
  type?: string;
  title?: string;
  description?: string;
  properties?: Record<string, JsonSchema>;
  anyOf?: JsonSchema[];
  items?: JsonSchema;
  enum?: unknown[];
  minimum?: number;
  maximum?: number;
  exclusiveMinimum?: number;
  exclusiveMaximum?: number;
  multipleOf?: number;
  maxLength?: number;
  default?: unknown;
  "x-form"?: boolean; // false: for API clients only (the server marks fields that need others, like tools)
}

export interface Field {
  name: string;
  label: string;
  help: string;
  kind: "integer" | "number" | "boolean" | "string" | "choice";
  choices: string[];
  min?: number;
  max?: number;
  step?: number;
  maxLength?: number;
  default?: unknown;
}

export const TASK_LABELS: Record<string, string> = {
  ttt: "Text",
  tti: "Image",
  i2i: "Image to image",
  tts: "Speech",
  stt: "Transcription",
  ttm: "Music",
  ttv: "Video",
  audio2audio: "Audio clean-up",
};

/** The scalar fields of a parameters schema, as form fields. Lists and objects (tools, stop sequences,
 * response formats) and fields marked ``x-form: false`` are left to API clients. */
export function formFields(schema: JsonSchema): Field[] {
  const fields: Field[] = [];
  for (const [name, property] of Object.entries(schema.properties ?? {})) {
    if (property["x-form"] === false) continue;
    const branch = (property.anyOf ?? [property]).find((option) => option.type !== "null") ?? property;
    const base = {
      name,
      label: property.title ?? name,
      help: property.description ?? "",
      choices: [] as string[],
      default: property.default ?? undefined,
    };
    if (branch.enum) {
      fields.push({ ...base, kind: "choice", choices: branch.enum.map(String) });
    } else if (branch.type === "integer" || branch.type === "number") {
      fields.push({
        ...base,
        kind: branch.type,
        min: branch.minimum ?? branch.exclusiveMinimum,
        max: branch.maximum ?? branch.exclusiveMaximum,
        step: branch.multipleOf ?? (branch.type === "integer" ? 1 : undefined),
      });
    } else if (branch.type === "boolean") {
      fields.push({ ...base, kind: "boolean" });
    } else if (branch.type === "string") {
      fields.push({ ...base, kind: "string", maxLength: branch.maxLength });
    }
  }
  return fields;
}

/** The parameters a request sends: only the fields given a value, typed as the schema says. */
export function collectParameters(fields: Field[], values: Record<string, unknown>): Record<string, unknown> {
  const parameters: Record<string, unknown> = {};
  for (const field of fields) {
    const value = values[field.name];
    if (value === undefined || value === null || value === "") continue;
    if (field.kind === "integer" || field.kind === "number") {
      const number = Number(value);
      if (!Number.isNaN(number)) parameters[field.name] = field.kind === "integer" ? Math.trunc(number) : number;
    } else if (field.kind === "boolean") {
      if (value !== field.default) parameters[field.name] = Boolean(value);
    } else {
      parameters[field.name] = String(value);
    }
  }
  return parameters;
}
