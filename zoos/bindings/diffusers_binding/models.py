"""Which diffusers pipelines an instance offers: folders saved with ``save_pretrained``, or Hub ids when allowed.

A request names a model as listed: a folder name of ``<models_folder>/diffusers_models/``, the instance's
configured ``default_model`` (which may be any path the operator chose), or — only when the instance sets
``allow_download`` — a Hub id (``owner/name``). Names are checked as text before the file system is touched,
so a request cannot name paths or probe for files.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lollms_server.core.errors import BadRequestError, NotFoundError
from lollms_server.core.limits import check_name

FOLDER = "diffusers_models"
INDEX = "model_index.json"
# A plain folder name: letters, digits, '.', '_', '-', never starting with a dot.
FOLDER_NAME = re.compile(r"[A-Za-z0-9_\-][A-Za-z0-9_.\-]*")
HUB_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.\-]*/[A-Za-z0-9][A-Za-z0-9_.\-]*")


@dataclass(frozen=True)
class DiffusersModel:
    """A model the instance offers: the name clients use and where from_pretrained loads it."""

    name: str
    location: str  # a folder's real path, or a Hub id
    source: str  # models_folder, configured, hub

    @property
    def is_hub(self) -> bool:
        return self.source == "hub"


def _is_pipeline_folder(path: Path) -> bool:
    return (path / INDEX).is_file()


class ModelCatalog:
    """The pipelines of one instance: resolves request names and lists what is offered (never paths)."""

    def __init__(self, models_folder: Path | None, configured: str | None, allow_download: bool) -> None:
        self.folder = models_folder / FOLDER if models_folder else None
        self.configured = configured or None
        self.allow_download = allow_download

    def resolve(self, name: str | None) -> DiffusersModel:
        """The model ``name`` selects (None: the configured default). BadRequestError for a name no request may
        use, NotFoundError (listing what exists) for one that is not there."""
        if not name or name == self.configured:
            return self._configured_default()
        check_name("model name", name)
        if FOLDER_NAME.fullmatch(name) and ".." not in name:
            return self._from_models_folder(name)
        if HUB_ID.fullmatch(name) and ".." not in name:
            if not self.allow_download:
                raise BadRequestError(
                    f"model '{name}' looks like a Hub id, and this instance does not download models "
                    "(allow_download is off); use a name from the model list"
                )
            return DiffusersModel(name, name, "hub")
        raise BadRequestError("model paths are not accepted from requests; use a model name from the model list")

    def _configured_default(self) -> DiffusersModel:
        name = self.configured
        if not name:
            available = ", ".join(self.names()) or "none"
            raise BadRequestError(f"no model named and no default_model configured (available: {available})")
        path = Path(os.path.expanduser(name))
        if path.is_absolute():
            if not _is_pipeline_folder(path):
                raise NotFoundError(f"the instance's default_model '{path.name}' is not a saved diffusers pipeline")
            return DiffusersModel(name, str(path.resolve()), "configured")
        if FOLDER_NAME.fullmatch(name) and ".." not in name:
            return self._from_models_folder(name)
        if HUB_ID.fullmatch(name) and self.allow_download:
            return DiffusersModel(name, name, "hub")
        raise NotFoundError(
            f"the instance's default_model '{name}' is neither a folder of {FOLDER}/ nor an absolute path"
            + ("" if self.allow_download else " (Hub ids need allow_download)")
        )

    def _from_models_folder(self, name: str) -> DiffusersModel:
        if self.folder is not None:
            path = self.folder / name
            if _is_pipeline_folder(path):
                return DiffusersModel(name, str(path.resolve()), "models_folder")
        raise NotFoundError(f"model '{name}' not found (available: {', '.join(self.names()) or 'none'})")

    def models(self) -> list[DiffusersModel]:
        found: list[DiffusersModel] = []
        if self.configured:
            try:
                found.append(self._configured_default())
            except (NotFoundError, BadRequestError):
                pass
        if self.folder is not None and self.folder.is_dir():
            found += [
                DiffusersModel(path.name, str(path.resolve()), "models_folder")
                for path in sorted(self.folder.iterdir())
                if path.name != self.configured and _is_pipeline_folder(path)
            ]
        return found

    def names(self) -> list[str]:
        return [model.name for model in self.models()]

    def list_models(self) -> list[dict[str, Any]]:
        return [
            {
                "name": model.name,
                "format": "diffusers",
                "supports_vision": False,
                "supports_audio": False,
                "details": {"source": model.source, "outputs": ["image"]},
            }
            for model in self.models()
        ]
