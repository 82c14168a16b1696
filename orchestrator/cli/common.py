"""What every ``cadre`` command shares: the consoles, the catalog options and loading it."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Optional

import typer
from rich.console import Console

out = Console(highlight=False)
err = Console(stderr=True, highlight=False)

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
