"""The one place that decides whether a path is a usable config file, and finds config files in folders.

A path that exists is the operator's: if it cannot be used (a dangling or looping symbolic link, a
folder, a device, an unsupported format, unreadable, too large) that is an error in one line, never a
reason to look elsewhere or to write a default file beside it.

Text config files are UTF-8, with or without a byte order mark: Windows editors write one, YAML and JSON allow
it, and every config file (main, instances, keys, personalities) is read the same way through ``config_text``.
"""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path

from lollms_server.core.errors import ConfigError

CONFIG_EXTENSIONS = (".yaml", ".yml", ".toml", ".json", ".db", ".sqlite", ".sqlite3")
# Config files are small; a cap keeps a wrong path (a model, a log) from being read into memory.
MAX_CONFIG_BYTES = 4 * 1024 * 1024


def _supported() -> str:
    return ", ".join(CONFIG_EXTENSIONS)


def _megabytes(size: int) -> str:
    return f"{size / (1024 * 1024):.1f} MB"


def _os_problem(path: Path, exc: OSError) -> str:
    if exc.errno == errno.ELOOP:
        return f"{path}: symbolic link loop; point the link at a real file"
    if exc.errno in (errno.EACCES, errno.EPERM):
        return f"{path}: cannot be read: permission denied (the server runs as uid {os.geteuid()})"
    if exc.errno == errno.ENOENT and os.path.islink(path):
        return f"{path}: symbolic link to '{os.readlink(path)}', which does not exist"
    if exc.errno == errno.ENOENT:
        return f"{path}: file not found"
    return f"{path}: cannot be read: {exc.strerror or exc}"


def check_config_file(path: Path) -> os.stat_result:
    """Raise ConfigError (one line) unless ``path`` is a regular file of a supported type within the size cap."""
    try:
        info = os.stat(path)  # follows links: a dangling link or a loop fails here
    except OSError as exc:
        raise ConfigError([_os_problem(path, exc)]) from exc
    if stat.S_ISDIR(info.st_mode):
        raise ConfigError([f"{path}: is a folder, not a config file"])
    if not stat.S_ISREG(info.st_mode):
        raise ConfigError([f"{path}: is not a regular file (a device, socket or pipe); a config file is needed"])
    if not path.suffix:
        raise ConfigError([f"{path}: is a file without an extension; a config file needs one of {_supported()}"])
    if path.suffix.lower() not in CONFIG_EXTENSIONS:
        raise ConfigError([f"{path}: unsupported file type '{path.suffix}'; use one of {_supported()}"])
    if info.st_size > MAX_CONFIG_BYTES:
        raise ConfigError(
            [
                f"{path}: is {_megabytes(info.st_size)}; config files are limited to "
                f"{_megabytes(MAX_CONFIG_BYTES)} (is this the right file?)"
            ]
        )
    return info


def read_config_bytes(path: Path) -> bytes:
    """The content of a usable config file (``check_config_file``), never more than the size cap."""
    check_config_file(path)
    try:
        with open(path, "rb") as handle:
            data = handle.read(MAX_CONFIG_BYTES + 1)
    except OSError as exc:
        raise ConfigError([_os_problem(path, exc)]) from exc
    if len(data) > MAX_CONFIG_BYTES:  # it grew since it was checked
        raise ConfigError([f"{path}: is larger than {_megabytes(MAX_CONFIG_BYTES)}, the limit for config files"])
    return data


UTF8_BOM = b"\xef\xbb\xbf"


def without_bom(data: bytes) -> bytes:
    """A text config file's bytes without the UTF-8 byte order mark it may start with."""
    return data[len(UTF8_BOM) :] if data.startswith(UTF8_BOM) else data


def config_text(path: Path, data: bytes) -> str:
    """A text config file's content: UTF-8, a leading byte order mark dropped; ConfigError when not UTF-8."""
    text = without_bom(data)
    try:
        return text.decode("utf-8")
    except UnicodeDecodeError as exc:
        position = exc.start + len(data) - len(text)
        raise ConfigError([f"{path}: cannot be parsed: not UTF-8 text (byte {position}); save it as UTF-8"]) from None


def check_config_folder(folder: Path, described_as: str | None = None) -> None:
    """Raise ConfigError unless ``folder`` is a folder or nothing at all (a first run creates it)."""
    label = f"{described_as} = {folder}" if described_as else str(folder)
    try:
        info = os.stat(folder)
    except FileNotFoundError:
        if os.path.islink(folder):
            raise ConfigError([f"{label}: symbolic link to '{os.readlink(folder)}', which does not exist"]) from None
        return
    except OSError as exc:
        raise ConfigError([_os_problem(Path(label), exc)]) from exc
    if not stat.S_ISDIR(info.st_mode):
        raise ConfigError([f"{label}: is a file, not a folder; name the folder that holds the config files"])


def find_config_file(folder: Path, stem: str) -> Path | None:
    """The single usable ``<stem>.<ext>`` in ``folder``, or None when there is none at all.

    Everything named ``<stem>.<one extension>`` counts, so a file that is there but unusable (two
    formats at once, an unsupported format, a dangling link, a folder) is reported, not skipped.
    Backups (``<stem>.yaml.v1.0.bak``) and editors' temporary files have more than one extension.
    """
    try:
        names = sorted(entry.name for entry in os.scandir(folder))
    except (FileNotFoundError, NotADirectoryError):
        return None
    except OSError as exc:
        raise ConfigError([f"{folder}: cannot be listed: {exc.strerror or exc}"]) from exc
    candidates = [name for name in names if name.startswith(f"{stem}.") and "." not in name[len(stem) + 1 :]]
    supported = [name for name in candidates if Path(name).suffix.lower() in CONFIG_EXTENSIONS]
    if len(supported) > 1:
        raise ConfigError([f"{folder}: several files for '{stem}' ({', '.join(supported)}); keep exactly one"])
    if not supported:
        if candidates:
            check_config_file(folder / candidates[0])  # raises: unsupported type (or worse)
        return None
    path = folder / supported[0]
    check_config_file(path)
    return path
