"""The ``cadre`` command line (typer): one module per command group.

``root`` holds the root commands, ``app`` and ``main``; ``runs``, ``batch`` and ``inputs`` run
workflows (one input, or a file of many); ``serve`` the API, run workers and keys;
``specialize`` training, eval and the adapter registry; ``memory``; ``tenants``; ``common`` the
options they share.

Heavy imports (ray, engines) happen inside the commands that need them, so ``cadre --help`` and
``cadre validate`` stay fast.
"""

from orchestrator.cli.root import app, main

__all__ = ["app", "main"]
