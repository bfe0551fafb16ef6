"""``python -m lollms_server``."""

import sys

from lollms_server.relaunch import in_project_venv

in_project_venv()
from lollms_server.cli import main  # noqa: E402

sys.exit(main())
