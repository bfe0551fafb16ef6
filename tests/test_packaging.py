"""The wheel ships the zoos and the built web UI, so a `pip install` (not only a checkout) finds the built-in
components and serves the UI without Node."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

from tests.user_installs import fresh_clone

ROOT = Path(__file__).resolve().parent.parent


def test_wheel_contains_every_zoo_file_and_the_web_ui(tmp_path: Path) -> None:
    # Built from a copy: setuptools writes build/ where it builds, and two runs of the suite may build at once.
    source = fresh_clone(tmp_path / "source")
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(tmp_path),
            str(source),
        ],
        check=True,
        capture_output=True,
        timeout=300,
    )
    wheel = next(tmp_path.glob("lollms_server-*.whl"))
    names = set(zipfile.ZipFile(wheel).namelist())
    tracked = subprocess.run(
        ["git", "ls-files", "zoos"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.split()
    zoo_files = [path for path in tracked if (ROOT / path).is_file()] or [
        str(path.relative_to(ROOT)) for path in (ROOT / "zoos").rglob("*") if path.is_file()
    ]
    assert zoo_files
    missing = [path for path in zoo_files if f"lollms_server/{path}" not in names]
    assert missing == []
    # Every Python package of the source tree is in the wheel (a forgotten one crashes an installed server).
    for init in (ROOT / "lollms_server").rglob("__init__.py"):
        assert init.relative_to(ROOT).as_posix() in names, init
    assert not any(name.startswith("zoos/") for name in names)  # no top-level "zoos" package in site-packages
    # The web UI as built (setup.py builds it first when it is missing or stale).
    built = ROOT / "webui" / "dist"
    shipped = sorted(name.removeprefix("lollms_server/webui_dist/") for name in names if "/webui_dist/" in name)
    assert "index.html" in shipped and any(name.startswith("assets/") and name.endswith(".js") for name in shipped)
    assert shipped == sorted(path.relative_to(built).as_posix() for path in built.rglob("*") if path.is_file())
