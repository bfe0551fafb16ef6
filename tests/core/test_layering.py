"""Imports only go downward: the contracts in pyproject.toml's [tool.importlinter] (entry points over the app, the
app over the HTTP edge, the edge over the core, the core free of HTTP, no circles inside a package), checked with
import-linter on the installed package."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

PYPROJECT = Path(__file__).resolve().parents[2] / "pyproject.toml"
# import-linter's command, as its console script runs it (the library's use cases need the CLI's settings).
LINT_IMPORTS = "import sys; from importlinter.cli import lint_imports_command; sys.exit(lint_imports_command())"


def test_every_import_contract_holds() -> None:
    result = subprocess.run(
        [sys.executable, "-c", LINT_IMPORTS, "--config", str(PYPROJECT), "--no-cache"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


def test_the_spec_import_path_still_offers_the_domain_types() -> None:
    from lollms_server.api import models
    from lollms_server.core import domain

    for name in ("InputData", "OutputData", "StreamChunk"):
        assert getattr(models, name) is getattr(domain, name)
