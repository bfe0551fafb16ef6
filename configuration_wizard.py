#!/usr/bin/env python3
"""Create or edit the lollms_server configuration (the wizard lives in ``lollms_server/wizard``).

python configuration_wizard.py                              interactive
python configuration_wizard.py --preset offline --yes       no questions (see --help, --list-presets)
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from lollms_server.relaunch import in_project_venv  # noqa: E402

in_project_venv()
from lollms_server.wizard.main import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
