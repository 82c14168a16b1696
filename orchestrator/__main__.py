"""``python -m orchestrator``: the ``cadre`` command (for Ray jobs and containers)."""

from orchestrator.cli import main

main()
