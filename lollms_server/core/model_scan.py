"""The folder scan behind ``GET /api/v1/list_models``: what lies in each category folder of models_folder."""

from __future__ import annotations

from pathlib import Path

# Categories always present in the answer, even when their folder does not exist.
MODEL_CATEGORIES = (
    "ttt",
    "tti",
    "ttv",
    "ttm",
    "tts",
    "stt",
    "audio2audio",
    "i2i",
    "gguf",
    "diffusers_models",
)


def scan_models_folder(models_folder: Path) -> dict[str, list[str]]:
    """Entries (files and folders, hidden ones skipped) of each subfolder of ``models_folder``. Blocking."""
    found: dict[str, list[str]] = {category: [] for category in MODEL_CATEGORIES}
    if not models_folder.is_dir():
        return found
    for category_dir in sorted(models_folder.iterdir()):
        if not category_dir.is_dir() or category_dir.name.startswith("."):
            continue
        found[category_dir.name] = sorted(
            entry.name for entry in category_dir.iterdir() if not entry.name.startswith(".")
        )
    return found
