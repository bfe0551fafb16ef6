// Conversations kept in this browser (localStorage): messages, and the personality they were held with.
export interface Media {
  type: "image" | "audio" | "video";
  src: string; // a data: URL (inline output) or a blob: URL (an artifact fetched with the key)
}
export interface Message {
  role: "user" | "assistant";
  text: string;
  media?: Media[];
  progress?: string;
  thoughts?: string;
  error?: string;
  usage?: { prompt_tokens?: number; completion_tokens?: number };
  seconds?: number;
}
export interface Conversation {
  id: string;
  title: string;
  personality: string | null;
  messages: Message[];
}

const STORE = "lollms.conversations";

export function loadConversations(): Conversation[] {
  try {
    return JSON.parse(localStorage.getItem(STORE) ?? "[]") as Conversation[];
  } catch {
    return [];
  }
}

export function saveConversations(all: Conversation[]): void {
  localStorage.setItem(STORE, JSON.stringify(all));
}

export function newConversation(): Conversation {
  return { id: crypto.randomUUID(), title: "New conversation", personality: null, messages: [] };
}

/** The conversation as /api/v1/generate's input_data: the turns in order. */
export function inputData(messages: Message[]): { type: string; role: string; data: string }[] {
  return messages
    .filter((message) => !message.error && message.text)
    .map((message) => ({
      type: "text",
      role: message.role === "user" ? "user_prompt" : "assistant_reply",
      data: message.text,
    }));
}
