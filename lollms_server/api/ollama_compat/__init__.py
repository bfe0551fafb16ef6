"""The Ollama HTTP API (/api/version, /api/tags, /api/show, /api/chat, /api/generate, /api/embed) over our core."""
