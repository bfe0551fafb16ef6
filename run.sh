#!/usr/bin/env bash
# Installs what is missing (a line per step; the details in install.log), then starts the server.
# Arguments go to lollms-server.
set -euo pipefail
cd "$(dirname "$0")"
PYTHON="${PYTHON:-python3}"
"$PYTHON" install_core.py --ensure --extras llamacpp,speech --webui --first-config -- "$@"
exec venv/bin/lollms-server "$@"
