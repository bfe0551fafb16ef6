"""Runs inside the sandbox, before the program: resource limits, an unprivileged user, then exec.

Executed as a script (``python -I -B sandbox_launcher.py CONFIG``) by the sandbox's Python, so it uses the
standard library only and imports nothing from lollms_server. CONFIG is a JSON object:
``{"limits": {"RLIMIT_AS": bytes, ...}, "uid": int | null, "gid": int | null, "ready_fd": int, "argv": [...]}``.
"""

from __future__ import annotations

import json
import os
import resource
import sys
from typing import Any


def apply(config: dict[str, Any]) -> None:
    """Set the limits (soft = hard, so the program cannot raise them) and leave root if we are root."""
    for name, value in config["limits"].items():
        resource.setrlimit(getattr(resource, name), (value, value))
    if config["uid"] is not None:
        # The sandbox was set up as root (no user namespace): become an ordinary user, which drops every
        # capability and makes RLIMIT_NPROC count (the kernel never applies it to root).
        os.setgroups([])
        os.setresgid(config["gid"], config["gid"], config["gid"])
        os.setresuid(config["uid"], config["uid"], config["uid"])


def main(argv: list[str]) -> None:
    config = json.loads(argv[1])
    open_max = os.sysconf("SC_OPEN_MAX")
    apply(config)
    os.write(config["ready_fd"], b"ready")
    os.closerange(3, max(open_max, 1024))  # the program gets stdin, stdout and stderr, nothing more
    program = config["argv"]
    os.execv(program[0], program)


if __name__ == "__main__":
    main(sys.argv)
