#!/usr/bin/env bash
# Installs what the tests need (into ./venv), then runs the whole test suite. Arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")"
PYTHON="${PYTHON:-python3}"
"$PYTHON" install_core.py --ensure --extras dev,diffusers,llamacpp,speech --webui-tests  # also builds the web UI, runs Vitest
# The code sandbox (tests/core/test_code_runner.py) needs bubblewrap: install it where we can (root, apt-get).
if ! command -v bwrap >/dev/null && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    export DEBIAN_FRONTEND=noninteractive
    { apt-get install -y --no-install-recommends bubblewrap >/dev/null 2>&1 \
        || { apt-get update >/dev/null && apt-get install -y --no-install-recommends bubblewrap >/dev/null; }; } \
        || echo "run_tests.sh: could not install bubblewrap; the sandbox tests will skip (and fail under CI=true)" >&2
fi
# The web UI's browser tests (tests/webui) need Chromium: install Debian's where we can.
if ! command -v chromium >/dev/null && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    export DEBIAN_FRONTEND=noninteractive
    { apt-get install -y --no-install-recommends chromium >/dev/null 2>&1 \
        || { apt-get update >/dev/null && apt-get install -y --no-install-recommends chromium >/dev/null; }; } \
        || echo "run_tests.sh: could not install chromium; the browser tests will skip (and fail under CI=true)" >&2
fi
exec venv/bin/python -m pytest "$@"
