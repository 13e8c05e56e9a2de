"""The reference's Postman collections pass with newman (bench/contract.py), when npm is available.

Runs the real service (API + one worker subprocesses) on a fresh database of the test server. The only
failures allowed are the ones docs/contract.md explains (sample data of the collection); the script exits 1
on any other.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def newman(tmp_path_factory) -> Path:
    if shutil.which("npm") is None:
        pytest.skip("npm is not installed")
    prefix = tmp_path_factory.mktemp("newman")
    install = subprocess.run(
        ["npm", "install", "--prefix", str(prefix), "newman", "--no-audit", "--no-fund", "--silent"],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    if install.returncode != 0:
        pytest.skip(f"newman could not be installed from npm: {install.stderr[-300:]}")
    return prefix / "node_modules" / ".bin" / "newman"


def test_postman_collections_pass(newman, admin_url) -> None:
    run = subprocess.run(
        [sys.executable, str(REPO / "bench" / "contract.py"), "--newman", str(newman), "--admin-url", admin_url],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    output = run.stdout + run.stderr
    print(output[-4000:])
    assert run.returncode == 0, output[-4000:]
    assert "UNEXPECTED" not in output
    summary = [line for line in output.splitlines() if line.endswith("failed") and "passed," in line][-1]
    passed = int(summary.split()[0])
    assert passed >= 200, summary
