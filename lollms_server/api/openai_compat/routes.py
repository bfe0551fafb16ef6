"""Routes of the OpenAI-compatible API."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter(prefix="/v1", tags=["openai-compatible"])
