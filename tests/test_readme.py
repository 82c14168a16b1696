"""Examples are tests: every command the README shows runs here, exactly as written."""

from __future__ import annotations

import re
import subprocess

import pytest

from tests.conftest import ROOT

README = (ROOT / "README.md").read_text()


def shown_commands() -> list[str]:
    commands = []
    for block in re.findall(r"```bash\n(.*?)```", README, flags=re.S):
        for line in block.splitlines():
            command = re.sub(r"\s+#\s.*$", "", line).strip()
            if command:
                commands.append(command)
    return commands


COMMANDS = shown_commands()


def test_the_first_screen_shows_demo_and_test() -> None:
    first_block = README.split("```bash\n", 1)[1].split("```", 1)[0]
    assert "make demo" in first_block and "make test" in first_block


def test_ci_runs_the_readme_test_command() -> None:
    assert "make test" in COMMANDS
    ci = (ROOT / ".ci" / "run").read_text()
    assert re.search(r"^make test$", ci, flags=re.M)


@pytest.mark.model
@pytest.mark.parametrize("command", [c for c in COMMANDS if c != "make test"])
def test_readme_command_runs(command: str) -> None:
    # `make test` is what is running this test; CI runs it (see the test above).
    result = subprocess.run(
        ["bash", "-c", command], cwd=ROOT, capture_output=True, text=True, timeout=600
    )
    assert result.returncode == 0, f"{command}\n{result.stdout}\n{result.stderr}"
    assert "Traceback" not in result.stderr
