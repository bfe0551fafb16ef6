"""Routes of the Ollama-compatible API."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter(tags=["ollama-compatible"])
