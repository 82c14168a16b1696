"""The catalog: what users write about their models and specialists, checked whole.

- :mod:`.specs`: the pydantic models of a model and a specialist (frozen, validated);
- :mod:`.load`: loading a catalog folder (and the workflows beside it) and checking it whole;
- :mod:`.weights`: where a model's weights are, and preparing them for engines that need a
  Hugging Face directory;
- :mod:`.yaml_files`: reading the YAML users write, within bounds.

``Catalog``, ``load_catalog``, ``default_root`` and ``default_graphs`` are importable from here.
They are loaded on first use: the loader checks workflows, and the workflow specs import this
package's specs, so an eager import here would be a cycle.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from orchestrator.catalog.load import Catalog, default_graphs, default_root, load_catalog

__all__ = ["Catalog", "default_graphs", "default_root", "load_catalog"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from orchestrator.catalog import load

        return getattr(load, name)
    raise AttributeError(f"module 'orchestrator.catalog' has no attribute {name!r}")
