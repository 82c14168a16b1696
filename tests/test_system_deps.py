"""`make test` brings the Debian packages the suite needs: as root it installs what is missing;
as another user it stops at once with the one command to run."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from tests.conftest import ROOT

SCRIPT = ROOT / "scripts" / "system-deps.sh"


def bare_path(tmp_path: Path) -> str:
    """A PATH with a shell and coreutils but no chromium and no initdb."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in ("bash", "ls", "id", "cat"):
        (bin_dir / tool).symlink_to(
            f"/usr/bin/{tool}" if Path(f"/usr/bin/{tool}").exists() else f"/bin/{tool}"
        )
    return str(bin_dir)


@pytest.mark.skipif(os.geteuid() != 0, reason="runs the script as another user (needs root)")
def test_another_user_is_told_the_one_command_to_run() -> None:
    import shutil
    import tempfile

    # A folder the other user can read: pytest's tmp dir, and maybe the checkout, are root's only.
    tmp_path = Path(tempfile.mkdtemp(prefix="cadre-deps-"))
    tmp_path.chmod(0o755)
    script = tmp_path / SCRIPT.name
    shutil.copy(SCRIPT, script)
    script.chmod(0o755)
    done = subprocess.run(
        ["runuser", "-u", "nobody", "--", "/usr/bin/env", f"PATH={bare_path(tmp_path)}",
         "bash", str(script)],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    shutil.rmtree(tmp_path)
    assert done.returncode == 2
    assert "run: sudo apt-get install -y chromium" in done.stderr


def test_nothing_is_done_when_everything_is_there() -> None:
    done = subprocess.run(["bash", str(SCRIPT)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and done.stdout == "" and done.stderr == ""
