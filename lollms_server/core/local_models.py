"""What in-process bindings share: model folders named by requests (never paths), the loaded models with one
lock each, and the torch device choice."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, ClassVar, Generic, TypeVar

import anyio

from lollms_server.core.errors import BadRequestError, NotFoundError
from lollms_server.core.limits import check_name

T = TypeVar("T")


def torch_device(setting: str) -> str:
    """``auto``: cuda, then mps, then cpu; anything else as configured."""
    import torch

    if setting != "auto":
        return setting
    if torch.cuda.is_available():
        return "cuda"
    mps = getattr(torch.backends, "mps", None)
    return "mps" if mps is not None and mps.is_available() else "cpu"


class ModelFolder:
    """The models of ``<models_folder>/<kind>/``: each a folder holding ``marker``, named by its folder name."""

    def __init__(self, models_folder: Path | None, kind: str, marker: str, binding: str) -> None:
        self.root = models_folder / kind if models_folder else None
        self.kind = kind
        self.marker = marker
        self.binding = binding

    def names(self) -> list[str]:
        if self.root is None or not self.root.is_dir():
            return []
        return sorted(path.name for path in self.root.iterdir() if (path / self.marker).is_file())

    def path(self, name: str, extra: list[str] | None = None) -> Path:
        """The folder of model ``name`` (blocking); NotFoundError listing what exists (``extra`` names too)."""
        check_name("model name", name)
        if self.root is not None and "/" not in name and "\\" not in name and name not in (".", ".."):
            if (self.root / name / self.marker).is_file():
                return self.root / name
        available = ", ".join([*(extra or []), *self.names()]) or f"none: save a model in <models_folder>/{self.kind}/"
        raise NotFoundError(f"model '{name}' not found on binding '{self.binding}' (available: {available})")


class LoadedModels(Generic[T]):
    """Models loaded once by name; each has a lock for the work that must not overlap on it."""

    def __init__(self) -> None:
        self._models: dict[str, T] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        self._load_lock = asyncio.Lock()

    async def get(self, name: str, load: Callable[[], Awaitable[T]]) -> T:
        async with self._load_lock:
            if name not in self._models:
                self._models[name] = await load()
                self._locks[name] = asyncio.Lock()
        return self._models[name]

    def lock(self, name: str) -> asyncio.Lock:
        return self._locks[name]

    def clear(self) -> None:
        self._models.clear()

    def __contains__(self, name: Any) -> bool:
        return name in self._models


class FolderModels:
    """For bindings whose models are the folders of ``<models_folder>/<model_kind>/`` (mixed in before Binding):
    the folder, resolving names and listing them."""

    model_kind: ClassVar[str]
    model_marker: ClassVar[str] = "config.json"
    model_format: ClassVar[str] = ""
    models_folder: Path | None
    binding_instance_name: str
    default_model_name: str | None

    @property
    def folder(self) -> ModelFolder:
        # models_folder is set by the BindingManager after the binding is built.
        return ModelFolder(self.models_folder, self.model_kind, self.model_marker, self.binding_instance_name)

    async def resolve_model(self, model_name: str | None) -> str | None:
        name = model_name or self.default_model_name
        if not name:
            raise BadRequestError(f"binding '{self.binding_instance_name}': name a model or set default_model")
        await anyio.to_thread.run_sync(self.folder.path, name)
        return name

    async def list_available_models(self) -> list[dict[str, Any]]:
        names = await anyio.to_thread.run_sync(self.folder.names)
        return [{"name": name, "format": self.model_format} for name in names]
