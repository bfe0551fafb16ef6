#!/usr/bin/env bash
# Creates ./venv, installs lollms_server and opens the installer menu (see install_core.py --help).
set -euo pipefail
cd "$(dirname "$0")"
PYTHON="${PYTHON:-python3}"
exec "$PYTHON" install_core.py "$@"
