"""What every ``cadre`` command shares: the consoles, the catalog options and loading it."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Any, Optional

import typer
from rich.console import Console

CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]")
"""Control characters but tab and line feed, and text-direction controls (U+202E shows
"gnp.exe" as "exe.png"): printed as escapes, never sent to the terminal as they are."""


def _visible(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def visible(text: str) -> str:
    """Text with its control and direction characters as escapes: for table cells, which the
    consoles do not see as text."""
    return CONTROL.sub(_visible, text)


class _Console(Console):
    """A console that shows control characters in what it prints as escapes (``\\x1b``): a
    run's output, a reviewer's reason or an error quoting them must not drive the terminal
    (set its title, clear it, hide text). Rich passes them through as they are."""

    def print(self, *objects: Any, **kwargs: Any) -> None:
        shown = [CONTROL.sub(_visible, o) if isinstance(o, str) else o for o in objects]
        super().print(*shown, **kwargs)


out = _Console(highlight=False)
err = _Console(stderr=True, highlight=False)

CatalogOption = Annotated[
    Optional[Path],  # noqa: UP045 - typer needs Optional here
    typer.Option(
        "--catalog",
        "-c",
        help="Catalog folder (models/, specialists/). Default: $CADRE_CATALOG or ./agents.",
        show_default=False,
    ),
]
GraphsOption = Annotated[
    Optional[Path],  # noqa: UP045 - typer needs Optional here
    typer.Option(
        "--graphs",
        "-g",
        help="Workflow folder. Default: $CADRE_GRAPHS or graphs/ beside the catalog folder.",
        show_default=False,
    ),
]


def load(catalog: Path | None, graphs: Path | None = None) -> Any:
    """Load and check the catalog and workflows (CatalogError lists every problem)."""
    from orchestrator.workflow.catalog import load_catalog

    return load_catalog(catalog, graphs)


def load_specs(catalog: Path | None) -> Any:
    """Load and check the catalog's models and specialists only: for commands that use no
    workflow, which a broken workflow file must not stop."""
    from orchestrator.workflow.catalog import load_catalog

    return load_catalog(catalog, workflows=False)
