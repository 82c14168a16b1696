"""The specialist catalog: what users write about their models and specialists, checked whole.

- :mod:`.specs`: the pydantic models of a model and a specialist (frozen, validated);
- :mod:`.engine_options`: the options each engine takes in a model's ``engine_options``;
- :mod:`.load`: loading a catalog folder and checking it whole;
- :mod:`.weights`: where a model's weights are, and preparing them for engines that need a
  Hugging Face directory;
- :mod:`.yaml_files`: reading the YAML users write, within bounds.

The workflows beside the catalog are a room up: :mod:`orchestrator.workflow.catalog` loads the
specialist catalog and the workflows together (``load_catalog``).
"""

from orchestrator.catalog.load import SpecialistCatalog, load_specialists

__all__ = ["SpecialistCatalog", "load_specialists"]
