"""Container health check: ``python -m app.healthcheck`` exits 0 when this container's process is healthy.

The API answers ``/api/v1/health/live`` on its own port. A worker container has no HTTP listener; its health
is its process being alive (it exits on fatal errors so the restart policy acts) and, system-wide, the
heartbeat behind ``/api/v1/health/ready``.
"""

from __future__ import annotations

import os
import sys
import urllib.request
from pathlib import Path


def main_command() -> list[str]:
    try:
        return Path("/proc/1/cmdline").read_bytes().decode(errors="replace").split("\0")
    except OSError:
        return []


def main() -> int:
    if "worker" in main_command():
        return 0
    url = f"http://127.0.0.1:{os.environ.get('PORT', '4000')}/api/v1/health/live"
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return 0 if response.status == 200 else 1
    except OSError:
        return 1


if __name__ == "__main__":
    sys.exit(main())
