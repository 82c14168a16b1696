"""Examples are tests: every command the README shows runs here, exactly as written."""

from __future__ import annotations

import re
import subprocess
import time

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
RUNNING = {"make test", "make test-vllm", "make test-phoenix"}
"""What runs these tests: CI runs both (see below)."""
VLLM = [c for c in COMMANDS if "vllm" in c and c not in RUNNING]
"""Commands for the vLLM environment: they run in `make test-vllm`, in order."""
SCREENSHOTS = "make screenshots"
"""Checked on its own below: what it writes, not only its exit status."""
MAIN = [c for c in COMMANDS if "vllm" not in c and c not in RUNNING | {SCREENSHOTS}]


def test_the_first_screen_shows_demo_and_test() -> None:
    first_block = README.split("```bash\n", 1)[1].split("```", 1)[0]
    assert "make demo" in first_block and "make test" in first_block


def test_ci_runs_the_readme_test_commands() -> None:
    ci = (ROOT / ".ci" / "run").read_text()
    for command in RUNNING:
        assert command in COMMANDS
        assert re.search(rf"^{command}$", ci, flags=re.M)


@pytest.mark.model
@pytest.mark.timeout(1200)  # `make bench` runs every benchmark; the vLLM steps train and score
@pytest.mark.parametrize("command", MAIN)
def test_readme_command_runs(command: str) -> None:
    run_as_shown(command)


@pytest.mark.vllm
@pytest.mark.timeout(1200)
@pytest.mark.parametrize("command", VLLM)
def test_readme_vllm_command_runs(command: str) -> None:
    run_as_shown(command)


def test_make_screenshots_writes_the_images_the_readme_links() -> None:
    started = time.time()
    run_as_shown(SCREENSHOTS)
    for name in ("review-queue.png", "review-edit.png"):
        image = ROOT / "docs" / name
        assert f"(docs/{name})" in README
        assert image.stat().st_mtime >= started - 1, f"{name} was not written again"
        assert image.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and image.stat().st_size > 10_000


def run_as_shown(command: str) -> None:
    result = subprocess.run(
        ["bash", "-c", command], cwd=ROOT, capture_output=True, text=True, timeout=1100
    )
    assert result.returncode == 0, f"{command}\n{result.stdout}\n{result.stderr}"
    assert "Traceback" not in result.stderr


def test_the_room_map_names_every_room_and_nothing_that_is_gone() -> None:
    """ "How it fits together" matches the tree: every package and top module of orchestrator/
    is named, and every orchestrator/ path it names exists."""
    section = README.split("## How it fits together", 1)[1].split("\n## ", 1)[0]
    package = ROOT / "orchestrator"
    rooms = sorted(
        p.name
        for p in package.iterdir()
        if (p.is_dir() and (p / "__init__.py").exists())
        or (p.suffix == ".py" and not p.name.startswith("__"))
    )
    assert [r for r in rooms if f"orchestrator/{r}" not in section] == []
    named = re.findall(r"`orchestrator/([\w/.]+?)/?`", section)
    assert named and [n for n in named if not (package / n).exists()] == []
