"""``python -m lollms_server``."""

import sys

from lollms_server.cli import main

sys.exit(main())
