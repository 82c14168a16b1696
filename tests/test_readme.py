"""Examples are tests: every command the README shows runs here, exactly as written."""

from __future__ import annotations

import re
import subprocess
import time

import pytest

from tests.conftest import ROOT

README = (ROOT / "README.md").read_text()


def shown_blocks() -> list[list[str]]:
    """The commands of each ```bash block, in order."""
    blocks = []
    for block in re.findall(r"```bash\n(.*?)```", README, flags=re.S):
        commands = [re.sub(r"\s+#\s.*$", "", line).strip() for line in block.splitlines()]
        blocks.append([c for c in commands if c])
    return [b for b in blocks if b]


BLOCKS = shown_blocks()
COMMANDS = [c for block in BLOCKS for c in block]
RUNNING = {"make test", "make test-vllm", "make test-phoenix"}
"""What runs these tests: CI runs both (see below)."""
VLLM = [c for c in COMMANDS if "vllm" in c and c not in RUNNING]
"""Commands for the vLLM environment: they run in `make test-vllm`, in order."""
SCREENSHOTS = "make screenshots"
"""Checked on its own below: what it writes, not only its exit status."""
MAIN = [c for c in COMMANDS if "vllm" not in c and c not in RUNNING | {SCREENSHOTS}]
MAIN_BLOCKS = [[c for c in b if c in MAIN] for b in BLOCKS if any(c in MAIN for c in b)]
"""Each block is one test: its commands run in order, so a block needs nothing an earlier
block left behind (what it does need is in NEEDS)."""

RUN = r"run run-[0-9a-f]{12} (succeeded|is waiting for review) \(\d+ tokens in, \d+ out\)"
EXPECT: dict[str, list[str]] = {
    "make demo": [
        r"== 1\. Check the catalog and the workflows ok: \d+ models, \d+ specialists, \d+ workflows",  # noqa: E501
        r"run run-[0-9a-f]{12} is waiting for review",
        r"== 4\. The reviewer approves",
        r"run run-[0-9a-f]{12} succeeded \(\d+ tokens in, \d+ out\)",
    ],
    ".venv/bin/cadre specialists list": [r"claim-extractor", r"ticket-triage", r"sentiment"],
    ".venv/bin/cadre specialists show claim-extractor": [
        r"^claim-extractor \(agents/specialists/claim-extractor\.yaml\)",
        r"output_schema - ",
    ],
    '.venv/bin/cadre ask sentiment "Thanks, the refund arrived today!"': [
        r'^\{ "sentiment": "(positive|negative|neutral)" \}',
        r"sentiment on smollm2-135m \(smollm2-135m-0\): \d+ tokens in, \d+ out",
    ],
    'echo "Still no refund." | .venv/bin/cadre ask sentiment - --json': [
        r'"specialist": "sentiment"',
        r'"output": \{ "sentiment": "(positive|negative|neutral)" \}',
        r'"usage": \{ "input_tokens": \d+, "output_tokens": \d+ \}',
    ],
    ".venv/bin/cadre validate": [r"^ok: \d+ models, \d+ specialists, \d+ workflows$"],
    ".venv/bin/cadre models list": [r"smollm2-135m", r"llamacpp"],
    ".venv/bin/cadre models prepare smollm2-135m": [r"^smollm2-135m: [\w ]+ at \S+ \([\d.]+ s\)"],
    ".venv/bin/cadre graph list": [r"claim-triage", r"research-brief", r"support-ticket"],
    ".venv/bin/cadre graph show support-ticket": [r"graph TD;", r"triage_each__item"],
    ".venv/bin/cadre run claim-triage --input examples/claim-small.json": [RUN],
    ".venv/bin/cadre run support-ticket --input examples/support-ticket.json": [RUN],
    ".venv/bin/cadre run research-brief --input examples/research-brief.json": [RUN],
    ".venv/bin/cadre runs list": [r"run-[0-9a-f]{12}", r"status"],
    ".venv/bin/cadre review list": [r"review", r"status|no reviews waiting"],
    ".venv/bin/cadre tenants budget globex --tokens-per-day 200000": [
        r"globex: 200000 tokens a day; \d+ used today \(UTC\), \d+ left"
    ],
    ".venv/bin/cadre tenants list": [r"globex", r"200000"],
    ".venv/bin/cadre corpus index home-policy": [
        r"^home-policy: \d+ added, \d+ updated, \d+ removed, \d+ unchanged files; \d+ chunks"
    ],
    '.venv/bin/cadre corpus search home-policy "is a burst pipe covered, and what is the '
    'deductible?"': [r"^\[1\] \S+\.md#\d+ score 0\.\d+", r"burst pipe"],
    '.venv/bin/cadre memory search "storm damage to a roof"': [
        r"score .* namespace .* text .* provenance"  # a table, empty until a run remembers
    ],
    ".venv/bin/cadre trace $(.venv/bin/cadre runs list -q --limit 1)": [
        r"^trace [0-9a-f]{32} run run-[0-9a-f]{12} ",
        r"invoke_workflow \S+ +[\d.]+ s",
    ],
    ".venv/bin/cadre trace $(.venv/bin/cadre runs list -q --limit 1) --json": [
        # the root, or the run's stretches so far while it waits for a review
        r'^\[ \{ "name": "(cadre.run|invoke_workflow \S+)", "span_id": "[0-9a-f]{16}"'
    ],
    ".venv/bin/cadre runs show $(.venv/bin/cadre runs list -q --limit 1)": [
        r"^run-[0-9a-f]{12} \S+ (succeeded|awaiting_review|failed|cancelled)",
        r"started \d{4}-\d\d-\d\d",
        r"nodes: ",
    ],
    "mkdir -p .cadre": [r"^$"],
    ".venv/bin/cadre keys create --tenant acme --role submitter > .cadre/submitter.key": [
        r"^key [0-9a-f]{12}: acme-submitter, tenant acme, role submitter$"
    ],
    '.venv/bin/cadre keys create --tenant acme --role reviewer --name "Rita Reviewer" > '
    ".cadre/reviewer.key": [r"^key [0-9a-f]{12}: Rita Reviewer, tenant acme, role reviewer$"],
    ".venv/bin/cadre keys list --tenant acme": [r"submitter", r"Rita Reviewer"],
    ".venv/bin/cadre specialize ticket-triage --data examples/specialize/ticket-triage.train.jsonl": [  # noqa: E501
        r"ticket-triage v\d+: \d+ steps on \d+ examples, loss ([\d.]+ -> )?[\d.]+",
        r"Next: cadre eval ticket-triage",
    ],
    ".venv/bin/cadre eval ticket-triage --data examples/specialize/ticket-triage.ood.jsonl": [
        r"ticket-triage on \d+ held-out examples",
        r"right answers per field; the metric scores team only",
        r"shipped adapter\W+\d+/40\W+\d+/40",
        r"plot: \S+",
    ],
    ".venv/bin/cadre eval ticket-triage --data examples/specialize/ticket-triage.heldout.jsonl": [
        r"ticket-triage on \d+ held-out examples",
        r"plot: \S+",
    ],
    ".venv/bin/cadre eval claim-extractor --data examples/specialize/claim-extractor.heldout.jsonl": [  # noqa: E501
        r"claim-extractor on \d+ held-out examples",
        r"right answers per field",
        r"plot: \S+",
    ],
    ".venv/bin/cadre eval claim-extractor --data examples/specialize/claim-extractor.ood.jsonl": [
        r"claim-extractor on \d+ held-out examples",
        r"plot: \S+",
    ],
    ".venv/bin/cadre eval claim-decision --data examples/specialize/claim-decision.heldout.jsonl": [
        r"claim-decision on \d+ held-out examples",
        r"plot: \S+",
    ],
    ".venv/bin/cadre specialists promote ticket-triage v1 --force --as readme": [
        r"^ticket-triage: v1 is live \("
    ],
    ".venv/bin/cadre specialists versions ticket-triage": [r"v1", r"exact_match"],
    ".venv/bin/cadre run support-ticket --input "
    """'{"ticket": "I was charged twice for my invoice."}'""": [RUN],
    ".venv/bin/cadre specialists rollback ticket-triage --as readme": [
        r"^ticket-triage: .+ is live$"
    ],
    "make lint": [r"Success: no issues found", r"Contracts: 1 kept, 0 broken"],
    ".venv/bin/pre-commit install": [r"pre-commit installed at \S+"],
    "make bench": [
        r"ratio hosted/direct: ",
        r"identical answers: (\d+)/\1;",
        r"ratio ask/--help: ",
        r"ratio Cadre/raw: ",
        r"dense hit@1 \d+/\d+",
        r"ratio store/baseline: ",
        r"ratio API throughput/in-process: ",
    ],
}
"""What each command must print (stdout and stderr, whitespace runs read as one space, so a
table or a line wrapped by the terminal width still matches)."""

ANSI = re.compile(r"\x1b\[[0-9;]*m")
"""Terminal styles (the demo's step headers), left out before matching."""

NEEDS: dict[str, tuple[str, str]] = {
    ".venv/bin/cadre trace $(.venv/bin/cadre runs list -q --limit 1)": (
        ".venv/bin/cadre runs list -q --limit 1",
        ".venv/bin/cadre run claim-triage --input examples/claim-small.json",
    ),
}
"""A block's first command -> (a check, and what to run first when the check prints nothing):
the trace block reads the latest run, and makes one if there is none."""


def test_the_first_screen_shows_demo_and_test() -> None:
    first_block = README.split("```bash\n", 1)[1].split("```", 1)[0]
    assert "make demo" in first_block and "make test" in first_block


def test_ci_runs_the_readme_test_commands() -> None:
    ci = (ROOT / ".ci" / "run").read_text()
    for command in RUNNING:
        assert command in COMMANDS
        assert re.search(rf"^{command}$", ci, flags=re.M)


def test_every_readme_command_says_what_it_must_print() -> None:
    assert sorted(set(MAIN) - set(EXPECT)) == []
    assert sorted(set(EXPECT) - set(MAIN)) == [], "an expectation for a command no longer shown"


@pytest.mark.model
@pytest.mark.timeout(3600)  # the specialization block trains and scores five times
@pytest.mark.parametrize("block", MAIN_BLOCKS, ids=[b[0] for b in MAIN_BLOCKS])
def test_readme_block_runs_and_prints_what_it_should(block: list[str]) -> None:
    if block[0] in NEEDS:
        check, first = NEEDS[block[0]]
        if not run_as_shown(check).strip():
            run_as_shown(first)
    for command in block:
        output = " ".join(ANSI.sub("", run_as_shown(command)).split())
        for pattern in EXPECT[command]:
            assert re.search(pattern, output), f"{command}\nexpected: {pattern}\ngot: {output}"


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


def run_as_shown(command: str) -> str:
    """Run one README command exactly as written; what it printed, stdout then stderr."""
    result = subprocess.run(
        ["bash", "-c", command], cwd=ROOT, capture_output=True, text=True, timeout=1100
    )
    assert result.returncode == 0, f"{command}\n{result.stdout}\n{result.stderr}"
    assert "Traceback" not in result.stderr
    return result.stdout + result.stderr


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
