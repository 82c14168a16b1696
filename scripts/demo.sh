#!/usr/bin/env bash
# `make demo`: the claim-triage workflow end to end on the embedded default model (SmolLM2 through
# a Ray-hosted llama.cpp engine): it pauses at the review gate, a reviewer approves from the CLI,
# and the run finishes.
set -euo pipefail
cadre=.venv/bin/cadre
step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

step "1. Check the catalog and the workflows"
$cadre validate

step "2. Run claim-triage on a large claim: real specialist calls, then the review gate"
$cadre run claim-triage --input examples/claim-large.json
run=$($cadre runs list --workflow claim-triage --limit 1 -q)
review=$($cadre review list --run "$run" -q)

step "3. The reviewer looks at what the specialists proposed"
$cadre review show "$review"

step "4. The reviewer approves; the run resumes from its checkpoint and decides"
$cadre review approve "$review" --as demo-reviewer

step "5. The finished run: nodes, tokens per specialist, the decision and who made it"
$cadre runs show "$run"
