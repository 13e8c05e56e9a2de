"""The migrated database matches the seed's Tables Reference, checked by the seed's own tool."""

from __future__ import annotations

import shutil
import subprocess
import sys

import pytest

from tests.dbutil import PROJECT_ROOT

CHECKER = PROJECT_ROOT.parent / "shared" / "tools" / "check_schema.py"


@pytest.mark.skipif(not CHECKER.exists(), reason="../shared/tools/check_schema.py is not beside this checkout")
@pytest.mark.skipif(shutil.which("psql") is None, reason="check_schema.py needs the psql client")
def test_check_schema_reports_zero_differences(database_url: str) -> None:
    result = subprocess.run(
        [sys.executable, str(CHECKER), database_url], capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip().endswith(", 0 differences"), result.stdout
