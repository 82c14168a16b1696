"""The README's API session, exactly as written: create the keys, start `cadre serve`, submit the
claim with curl, wait for its review, read it, approve it, wait for the run to succeed. Real
server, real Ray run workers, real SmolLM2."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import time
from pathlib import Path

import httpx
import pytest

from tests.conftest import ROOT

README = (ROOT / "README.md").read_text()


def blocks(fence: str) -> list[list[str]]:
    found = []
    for block in re.findall(rf"```{fence}\n(.*?)```", README, flags=re.S):
        lines = [re.sub(r"\s+#\s.*$", "", line).strip() for line in block.splitlines()]
        found.append([line for line in lines if line])
    return found


KEYS = next(b for b in blocks("bash") if any("cadre keys create" in line for line in b))
(SESSION,) = [b for b in blocks("shell") if any("cadre serve &" in line for line in b)]


def sh(command: str, env: dict[str, str], timeout: float = 300) -> str:
    done = subprocess.run(
        ["bash", "-c", command], cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout
    )
    assert done.returncode == 0, f"{command}\n{done.stdout}\n{done.stderr}"
    return done.stdout


@pytest.mark.model
@pytest.mark.ray
def test_the_readme_api_session_runs_as_written(tmp_path: Path) -> None:
    # A database of its own: the session's Idempotency-Key would otherwise find the run an
    # earlier session left in .cadre/ and answer with it.
    env = {**os.environ, "CADRE_DATABASE_URL": f"sqlite:///{tmp_path / 'cadre.db'}"}
    for command in KEYS:
        sh(command, env)
    with socket.socket() as probe:
        assert probe.connect_ex(("127.0.0.1", 8000)) != 0, "port 8000 is taken; the README uses it"
    serve = SESSION[0].removesuffix("&").strip()
    server = subprocess.Popen(
        ["bash", "-c", f"exec {serve}"], cwd=ROOT, env=env, start_new_session=True,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            assert server.poll() is None, f"`{serve}` exited with {server.returncode}"
            try:
                if httpx.get("http://127.0.0.1:8000/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.5)
        outputs = [sh(f"timeout 240 bash -c {_quote(line)}", env) for line in SESSION[1:]]
        assert '"proposed"' in outputs[2]  # the review, as the reviewer sees it
        assert '"decision":"approve"' in outputs[3]
        assert '"decided_by":"Rita Reviewer' in outputs[3]
    finally:
        os.killpg(server.pid, signal.SIGTERM)  # uvicorn exits; its local Ray goes with it
        try:
            server.wait(60)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)


def _quote(line: str) -> str:
    import shlex

    return shlex.quote(line)
