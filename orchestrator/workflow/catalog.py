"""The whole catalog a run needs: the specialist catalog (``agents/``) and the workflows beside it.

Workflows live in ``graphs/*.yaml`` (``$CADRE_GRAPHS``, default: the ``graphs`` folder next to the
catalog folder), one WorkflowSpec per file. :func:`load_catalog` checks the specialists, the tools
they name and every workflow against them, and reports every problem at once, each with its file
and field, in one :class:`~orchestrator.errors.CatalogError`; nothing starts until it is clean.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from orchestrator import config
from orchestrator.catalog.load import (
    SpecialistCatalog,
    checked_root,
    load_folder,
    lookup,
    read_specialists,
    rel,
    unknown,
)
from orchestrator.errors import CatalogError, Problem
from orchestrator.tools import registry
from orchestrator.workflow.checks import check_workflow
from orchestrator.workflow.spec import WorkflowSpec


@dataclass
class Catalog(SpecialistCatalog):
    """A checked catalog: models, specialists and workflows by name, and their files."""

    workflows: dict[str, WorkflowSpec] = field(default_factory=dict)

    def workflow(self, name: str) -> WorkflowSpec:
        """The workflow called ``name``, or NotFoundError with the closest names."""
        return lookup("workflow", name, self.workflows)


def load_catalog(
    root: Path | str | None = None, graphs: Path | str | None = None, *, workflows: bool = True
) -> Catalog:
    """Load and check every spec under ``root`` and the workflows in ``graphs`` (none without
    ``workflows``: for commands that use only specialists, which a broken workflow must not
    stop); raise CatalogError listing all problems."""
    catalog = Catalog(root=checked_root(root))
    if not workflows:
        problems = [*read_specialists(catalog), *_check_tools(catalog)]
        if problems:
            raise CatalogError(problems)
        return catalog
    named = graphs is not None or bool(os.environ.get(config.GRAPHS_ENV))
    graphs = Path(graphs) if graphs is not None else config.graphs_root(catalog.root)
    problems = read_specialists(catalog)
    if named and not graphs.is_dir():  # a folder someone named, not the default beside it
        found = "is a file, not a folder" if graphs.exists() else "workflow folder not found"
        problems.append(
            Problem(
                str(graphs),
                "",
                f"{found}; pass --graphs or set {config.GRAPHS_ENV} to a folder of workflow files",
            )
        )
    problems.extend(_check_tools(catalog))
    for path, workflow in load_folder(graphs, WorkflowSpec, problems):
        if workflow.name in catalog.workflows:
            first = catalog.sources[("workflow", workflow.name)]
            problems.append(
                Problem(rel(path), "name", f"workflow {workflow.name!r} is also in {rel(first)}")
            )
            problems.extend(check_workflow(workflow, catalog, rel(path)))  # all in one round
            continue
        catalog.workflows[workflow.name] = workflow
        catalog.sources[("workflow", workflow.name)] = path
        problems.extend(check_workflow(workflow, catalog, rel(path)))
    if problems:
        raise CatalogError(problems)
    return catalog


def _check_tools(catalog: SpecialistCatalog) -> list[Problem]:
    """A problem for each tool a specialist names that no tool module registers."""
    tools = registry()
    return [
        Problem(
            rel(catalog.sources[("specialist", spec.name)]),
            f"tools.{i}",
            unknown("tool", tool, tools),
        )
        for spec in catalog.specialists.values()
        for i, tool in enumerate(spec.tools)
        if tool not in tools
    ]
