#!/usr/bin/env bash
# Installs what is missing (first run only), then starts the server. Arguments go to lollms-server.
set -euo pipefail
cd "$(dirname "$0")"
PYTHON="${PYTHON:-python3}"
"$PYTHON" install_core.py --ensure --extras llamacpp,speech --webui
exec venv/bin/lollms-server "$@"
