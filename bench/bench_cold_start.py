"""Benchmark: cold start of `cadre ask`, the first answer from a new process.

Each figure is a whole process, started fresh: `cadre --help` (the baseline: Python and the CLI),
`cadre validate` (plus loading the catalog), and `cadre ask` on the real SmolLM2 model (plus
starting Ray, a ModelHost actor, loading the model and one answer). Prints min and median of
several runs and the ratio of `ask` to the baseline.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

CADRE = str(Path(sys.executable).parent / "cadre")
COMMANDS = {
    "cadre --help": [CADRE, "--help"],
    "cadre validate": [CADRE, "validate"],
    "cadre ask sentiment": [
        CADRE,
        "ask",
        "sentiment",
        "The update broke my export and support never answered.",
    ],
}


def timed(argv: list[str]) -> float:
    started = time.perf_counter()
    subprocess.run(argv, check=True, capture_output=True)
    return time.perf_counter() - started


def main(runs: int) -> None:
    figures = {name: [timed(argv) for _ in range(runs)] for name, argv in COMMANDS.items()}
    print(f"{runs} runs each, a new process every time")
    print(f"{'command':<22} {'min s':>8} {'median s':>9}")
    for name, times in figures.items():
        print(f"{name:<22} {min(times):>8.2f} {statistics.median(times):>9.2f}")
    base = statistics.median(figures["cadre --help"])
    ask = statistics.median(figures["cadre ask sentiment"])
    print(f"ratio ask/--help: x{ask / base:.1f} (+{ask - base:.2f} s for Ray, host, model, answer)")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    main(parser.parse_args().runs)
