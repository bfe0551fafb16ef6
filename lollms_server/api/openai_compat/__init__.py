"""The OpenAI API (/v1/models, /v1/chat/completions, /v1/completions, /v1/embeddings, /v1/images/generations,
/v1/images/edits) over our core."""
