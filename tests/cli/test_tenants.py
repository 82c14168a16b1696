"""`cadre tenants budget|list` as a user runs them, against a real SQLite run database."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

from tests.conftest import CADRE, ROOT


def test_set_show_list_and_remove_a_tenant_budget(tmp_path: Path) -> None:
    env = {**os.environ, "CADRE_DATABASE_URL": f"sqlite:///{tmp_path / 'runs.db'}"}

    def cadre(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [CADRE, "tenants", *args], capture_output=True, text=True, cwd=ROOT, env=env
        )

    made = cadre("budget", "acme", "--tokens-per-day", "50000")
    assert made.returncode == 0, made.stderr
    assert made.stdout.strip() == "acme: 50000 tokens a day; 0 used today (UTC), 50000 left"
    cadre("budget", "globex", "--tokens-per-day", "900")
    shown = cadre("budget", "acme", "--json")
    assert json.loads(shown.stdout) == {"tenant": "acme", "tokens_per_day": 50000, "used_today": 0}
    listed = cadre("list").stdout
    assert listed.index("acme") < listed.index("globex") and "50000" in listed

    gone = cadre("budget", "acme", "--remove")
    assert gone.stdout.strip() == "acme: no daily token budget; 0 tokens used today (UTC)"
    assert "acme" not in cadre("list").stdout

    refused = cadre("budget", "acme", "--tokens-per-day", "0")
    assert refused.returncode == 2 and "Traceback" not in refused.stderr
