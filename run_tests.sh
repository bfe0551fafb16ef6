#!/usr/bin/env bash
# Installs what the tests need (into ./venv), then runs the whole test suite. Arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")"
PYTHON="${PYTHON:-python3}"
"$PYTHON" install_core.py --ensure --extras dev,llamacpp
exec venv/bin/python -m pytest "$@"
