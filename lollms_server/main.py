"""``python lollms_server/main.py`` (spec section 6): the same entry point as ``lollms-server``."""

import sys
from pathlib import Path

if __package__ in (None, ""):
    # Run as a script: make the checkout importable so ``lollms_server`` resolves to this package.
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from lollms_server.relaunch import in_project_venv  # noqa: E402

in_project_venv()
from lollms_server.cli import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
