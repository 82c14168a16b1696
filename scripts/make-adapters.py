"""`make adapters`: train every shipped adapter again from its recipe and the shipped data.

Each recipe in agents/adapters/recipes.json becomes one `cadre specialize` run (a Ray Train job on
this machine) into a scratch registry; the finished version is copied to agents/adapters/NAME
(weights in float16, the meta without machine-specific fields). Names on the command line remake
only those. About 40 minutes for all four on a 2-core CPU.

    .venv/bin/python scripts/make-adapters.py [NAME ...]
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

from orchestrator.specialize.shipped import recipes, ship

ROOT = Path(__file__).resolve().parent.parent
ADAPTERS = ROOT / "agents" / "adapters"


def main(names: list[str]) -> None:
    known = recipes(ADAPTERS)
    unknown = sorted(set(names) - set(known))
    if unknown:
        raise SystemExit(f"no recipe for {', '.join(unknown)} in {ADAPTERS / 'recipes.json'}")
    cadre = Path(sys.executable).with_name("cadre")
    for name, recipe in known.items():
        if names and name not in names:
            continue
        with tempfile.TemporaryDirectory(prefix="cadre-adapters-") as scratch:
            command = [
                str(cadre), "specialize", name, "--data", recipe["data"],
                "--steps", str(recipe["steps"]), "--rank", str(recipe["rank"]),
                "--lr", str(recipe["learning_rate"]), "--batch", str(recipe["batch_size"]),
                "--seed", str(recipe["seed"]),
            ]  # fmt: skip
            print("$", " ".join(command), flush=True)
            env = {**os.environ, "CADRE_ADAPTERS_DIR": scratch}
            subprocess.run(command, check=True, cwd=ROOT, env=env)
            print(f"shipped {ship(Path(scratch) / name / 'v1', ADAPTERS / name)}", flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
