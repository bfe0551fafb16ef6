// Conversations kept in this browser (localStorage): messages, and the personality they were held with.
export interface Media {
  type: "image" | "audio" | "video";
  // A data: URL (inline output or input), a blob: URL (an artifact fetched with the key; gone after a reload),
  // or "" when it could not be kept.
  src: string;
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

function withoutMedia(all: Conversation[], drop: (src: string) => boolean): Conversation[] {
  return all.map((conversation) => ({
    ...conversation,
    messages: conversation.messages.map((message) => ({
      ...message,
      media: message.media?.map((item) => (drop(item.src) ? { ...item, src: "" } : item)),
    })),
  }));
}

export function loadConversations(): Conversation[] {
  try {
    const stored = JSON.parse(localStorage.getItem(STORE) ?? "[]") as Conversation[];
    return withoutMedia(stored, (src) => src.startsWith("blob:")); // blob: URLs die with the page
  } catch {
    return [];
  }
}

/** Keep the conversations; when the browser's storage is full, without their images and sounds (false). */
export function saveConversations(all: Conversation[]): boolean {
  try {
    localStorage.setItem(STORE, JSON.stringify(all));
    return true;
  } catch {
    localStorage.setItem(STORE, JSON.stringify(withoutMedia(all, () => true)));
    return false;
  }
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
