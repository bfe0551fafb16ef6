// The server's API as the UI uses it. The key travels in the X-API-Key header only, never in a URL.
import { SseParser } from "./sse";
import type { TaskInfo } from "./tasks";

export interface InputItem {
  type: string;
  role: string;
  data: string;
  mime_type?: string;
  metadata?: Record<string, unknown>;
}
export interface OutputItem {
  type: string;
  data: unknown;
  mime_type?: string | null;
  thoughts?: string | null;
  metadata?: Record<string, unknown> | null;
}
export interface StreamChunk {
  type: "chunk" | "info" | "error" | "function_call" | "final";
  content: unknown;
  thoughts?: string | null;
  metadata?: Record<string, unknown> | null;
}
export interface GenerateBody {
  input_data: InputItem[];
  personality?: string | null;
  binding_name?: string | null;
  model_name?: string | null;
  generation_type?: string;
  parameters?: Record<string, unknown>;
}

export class ApiError extends Error {
  constructor(public status: number, message: string) {
    super(message);
  }
}

export class Api {
  constructor(private key: string, private base = "") {}

  private headers(json = false): Record<string, string> {
    return { "X-API-Key": this.key, ...(json ? { "Content-Type": "application/json" } : {}) };
  }

  private async check(response: Response): Promise<Response> {
    if (response.ok) return response;
    let message = response.statusText;
    try {
      const body = await response.json();
      message = body.detail ?? body.error?.message ?? message;
    } catch {
      /* not JSON */
    }
    throw new ApiError(response.status, message);
  }

  async health(): Promise<{ status: string; version: string }> {
    return (await this.check(await fetch(`${this.base}/health`))).json();
  }

  async blob(path: string): Promise<Blob> {
    return (await this.check(await fetch(`${this.base}${path}`, { headers: this.headers() }))).blob();
  }

  async get<T>(path: string): Promise<T> {
    return (await this.check(await fetch(`${this.base}${path}`, { headers: this.headers() }))).json();
  }

  async tasks(): Promise<Record<string, TaskInfo>> {
    return (await this.get<{ tasks: Record<string, TaskInfo> }>("/api/v1/list_tasks")).tasks;
  }

  /** The names of the models a binding instance can use. */
  async models(instance: string): Promise<string[]> {
    const listed = await this.get<{ models: { name: string }[] }>(
      `/api/v1/list_available_models/${encodeURIComponent(instance)}`,
    );
    return listed.models.map((model) => model.name);
  }

  /** The stream of a generation; aborting ``signal`` closes the connection, which stops it on the server. */
  async *stream(body: GenerateBody, signal: AbortSignal): AsyncGenerator<StreamChunk> {
    const response = await this.check(
      await fetch(`${this.base}/api/v1/generate`, {
        method: "POST",
        headers: this.headers(true),
        body: JSON.stringify({ ...body, stream: true }),
        signal,
      }),
    );
    const reader = response.body!.getReader();
    const parser = new SseParser();
    for (;;) {
      const { done, value } = await reader.read();
      if (done) return;
      for (const event of parser.feed(value)) yield JSON.parse(event.data) as StreamChunk;
    }
  }
}

// The blobs behind the blob: URLs made here, so an output can be sent back as an input without a fetch (the
// CSP's connect-src allows the server only).
const blobs = new Map<string, Blob>();

export function blobBehind(url: string): Blob | undefined {
  return blobs.get(url);
}

/** A browser-displayable source for a binary output: inline base64 as a data: URL, an artifact path fetched with
 * the key (never put in a URL) as a blob: URL. */
export async function mediaSource(api: Api, output: OutputItem): Promise<string> {
  const data = String(output.data ?? "");
  if (data.startsWith("/api/v1/artifacts/")) {
    const blob = await api.blob(data);
    const url = URL.createObjectURL(blob);
    blobs.set(url, blob);
    return url;
  }
  return `data:${output.mime_type ?? "application/octet-stream"};base64,${data}`;
}
