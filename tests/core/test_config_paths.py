"""Operator mistakes around the main config's location fail closed, whichever way the config is found.

Each mistake is tried through every form (``--config FILE``, ``--config DIR``, ``$LOLLMS_CONFIG_DIR``,
``./lollms_configs``) with ``create=True``, as the server starts: one clear line, and nothing written.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import yaml

from lollms_server.core.config import open_main_config
from lollms_server.core.config_schema import MAIN_SCHEMA_VERSION
from lollms_server.core.errors import ConfigError

VALID = yaml.safe_dump({"__version__": MAIN_SCHEMA_VERSION, "security": {"allowed_api_keys": ["k-1234567890abcdef"]}})
NOBODY = 65534


def dangling(folder: Path) -> str:
    (folder / "main_config.yaml").symlink_to(folder / "moved_away.yaml")
    return "main_config.yaml"


def loop(folder: Path) -> str:
    (folder / "main_config.yaml").symlink_to(folder / "main_config.yaml")
    return "main_config.yaml"


def unsupported(folder: Path) -> str:
    (folder / "main_config.ini").write_text("[server]\nport = 9601\n")
    return "main_config.ini"


def a_folder(folder: Path) -> str:
    (folder / "main_config.yaml").mkdir()
    return "main_config.yaml"


def a_pipe(folder: Path) -> str:
    os.mkfifo(folder / "main_config.yaml")  # reading it would block forever
    return "main_config.yaml"


def two_formats(folder: Path) -> str:
    (folder / "main_config.yaml").write_text(VALID)
    (folder / "main_config.json").write_text("{}")
    return "main_config.yaml"


MISTAKES: dict[str, tuple[Callable[[Path], str], str]] = {
    "dangling symlink": (dangling, "symbolic link to"),
    "symlink loop": (loop, "symbolic link loop"),
    "unsupported extension": (unsupported, "unsupported file type '.ini'"),
    "folder named main_config.yaml": (a_folder, "is a folder, not a config file"),
    "named pipe": (a_pipe, "not a regular file"),
    "two formats": (two_formats, "several files for 'main_config'"),
}
FORMS = ["--config FILE", "--config DIR", "$LOLLMS_CONFIG_DIR", "./lollms_configs"]


def listing(root: Path) -> list[str]:
    return sorted(str(path.relative_to(root)) for path in root.rglob("*"))


def open_through(form: str, root: Path, name: str, monkeypatch: pytest.MonkeyPatch) -> object:
    folder = root / "lollms_configs"
    monkeypatch.delenv("LOLLMS_CONFIG_DIR", raising=False)
    if form == "--config FILE":
        return open_main_config(str(folder / name), create=True, cwd=root)
    if form == "--config DIR":
        return open_main_config(str(folder), create=True, cwd=root)
    if form == "$LOLLMS_CONFIG_DIR":
        monkeypatch.setenv("LOLLMS_CONFIG_DIR", str(folder))
        return open_main_config(None, create=True, cwd=root / "elsewhere")
    return open_main_config(None, create=True, cwd=root)


# An explicit file is never ambiguous: "two formats" is a mistake only when a folder is searched.
CASES = [(mistake, form) for mistake in MISTAKES for form in FORMS if (mistake, form) != ("two formats", FORMS[0])]


@pytest.mark.parametrize(("mistake", "form"), CASES)
def test_mistake_fails_closed_in_every_form(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, form: str, mistake: str
) -> None:
    make, expected = MISTAKES[mistake]
    folder = tmp_path / "lollms_configs"
    folder.mkdir()
    name = make(folder)
    before = listing(tmp_path)

    with pytest.raises(ConfigError) as caught:
        open_through(form, tmp_path, name, monkeypatch)

    assert len(caught.value.problems) == 1 and expected in caught.value.problems[0], caught.value.problems
    assert str(folder) in caught.value.problems[0]
    assert listing(tmp_path) == before  # no default config written beside it, no key generated


@pytest.mark.parametrize(
    ("setup", "expected"),
    [
        (
            lambda root: (root / "lollms_configs").write_text("not a folder"),
            # --config takes a file too: then it is a file without a config extension
            {"--config DIR": "is a file without an extension", "*": "is a file, not a folder"},
        ),
        (lambda root: (root / "lollms_configs").symlink_to(root / "gone"), {"*": "symbolic link to"}),
    ],
)
def test_the_config_folder_itself_must_be_a_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, setup: Callable[[Path], object], expected: dict[str, str]
) -> None:
    setup(tmp_path)
    before = listing(tmp_path)
    for form in FORMS[1:]:
        with pytest.raises(ConfigError) as caught:
            open_through(form, tmp_path, "", monkeypatch)
        wanted = expected.get(form, expected["*"])
        assert len(caught.value.problems) == 1 and wanted in caught.value.problems[0], (form, caught.value)
    assert listing(tmp_path) == before


def test_a_new_config_path_with_a_foreign_extension_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no such file or folder; a new config file needs one of"):
        open_main_config(str(tmp_path / "main_config.ini"), create=True)
    assert listing(tmp_path) == []


def test_backups_and_editor_files_are_not_candidates(tmp_path: Path) -> None:
    folder = tmp_path / "lollms_configs"
    folder.mkdir()
    (folder / "main_config.yaml").write_text(VALID)
    for name in ("main_config.yaml.v0.3.2.bak", "main_config.yaml.plaintext.bak.fernet", ".main_config.x.writing.yaml"):
        (folder / name).write_text("junk")
    config, created = open_main_config(str(folder), create=True)
    assert created is None and config.path == (folder / "main_config.yaml").resolve()


@contextlib.contextmanager
def unreadable_for_us(path: Path) -> Iterator[None]:
    """Make ``path`` unreadable to this process for real: root reads anything, so drop to nobody."""
    owner_only = 0o700 if path.is_dir() else 0o600
    if os.geteuid() != 0:
        path.chmod(0)
        try:
            yield
        finally:
            path.chmod(owner_only)
        return
    path.chmod(owner_only)
    os.setegid(NOBODY)
    os.seteuid(NOBODY)
    try:
        yield
    finally:
        os.seteuid(0)
        os.setegid(0)


@pytest.mark.parametrize(("what", "expected"), [("file", "permission denied"), ("folder", "cannot be listed")])
def test_unreadable_file_or_folder_is_one_line(what: str, expected: str) -> None:
    # A folder every user may enter, so only the file (or the folder's listing) is out of reach.
    with tempfile.TemporaryDirectory(dir="/tmp") as root_name:
        root = Path(root_name)
        root.chmod(0o755)
        folder = root / "lollms_configs"
        folder.mkdir(mode=0o755)
        (folder / "main_config.yaml").write_text(VALID)
        with unreadable_for_us(folder / "main_config.yaml" if what == "file" else folder):
            with pytest.raises(OSError):
                (folder / "main_config.yaml").read_bytes()  # the premise: we really cannot read it
            with pytest.raises(ConfigError) as caught:
                open_main_config(str(folder), create=True)
        assert len(caught.value.problems) == 1 and expected in caught.value.problems[0], caught.value.problems
        assert sorted(p.name for p in folder.iterdir()) == ["main_config.yaml"]
