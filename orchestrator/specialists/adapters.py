"""Which adapter version of a specialist is live: the read side of the adapter registry.

    .cadre/adapters/SPECIALIST/            ($CADRE_ADAPTERS_DIR instead of .cadre/adapters)
        v1/  adapter_config.json  adapter_model.safetensors  meta.json
        v2/  ...
        live.json   {"live": "v2", "stack": ["v1", "v2"], "history": [...]}

Every way of asking a specialist serves its live version (:func:`live_adapter`). Training,
promotion and rollback write this folder: :class:`orchestrator.specialize.registry.Registry`.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from orchestrator import config
from orchestrator.catalog import SpecialistCatalog
from orchestrator.catalog.specs import SpecialistSpec
from orchestrator.errors import NotFoundError

VERSION = re.compile(r"^v(\d+)$")


@dataclass(frozen=True)
class Version:
    """One trained adapter version."""

    specialist: str
    name: str
    path: Path
    meta: dict[str, Any]

    @property
    def number(self) -> int:
        match = VERSION.match(self.name)
        return int(match.group(1)) if match else 0

    @property
    def complete(self) -> bool:
        """Training finished and the adapter was written."""
        return (self.path / "adapter_config.json").is_file() and "trained_at" in self.meta


class AdapterVersions:
    """Adapter versions for every specialist under one folder, and which one is live."""

    def __init__(self, root: Path | None = None) -> None:
        self.root = Path(root) if root is not None else config.adapters_dir()

    def folder(self, specialist: str) -> Path:
        return self.root / specialist

    def versions(self, specialist: str) -> list[Version]:
        """All versions, oldest first (including unfinished ones)."""
        folder = self.folder(specialist)
        if not folder.is_dir():
            return []
        found = [self._version(specialist, p) for p in folder.iterdir() if VERSION.match(p.name)]
        return sorted(found, key=lambda v: v.number)

    def version(self, specialist: str, name: str) -> Version:
        path = self.folder(specialist) / name
        if not VERSION.match(name) or not path.is_dir():
            known = ", ".join(v.name for v in self.versions(specialist)) or "none yet"
            raise NotFoundError(
                f"specialist {specialist!r} has no adapter version {name!r} (versions: {known})"
            )
        return self._version(specialist, path)

    def _version(self, specialist: str, path: Path) -> Version:
        meta_file = path / "meta.json"
        meta = json.loads(meta_file.read_text()) if meta_file.is_file() else {}
        return Version(specialist, path.name, path, meta)

    def _live_file(self, specialist: str) -> Path:
        return self.folder(specialist) / "live.json"

    def _live_state(self, specialist: str) -> dict[str, Any]:
        path = self._live_file(specialist)
        if path.is_file():
            return dict(json.loads(path.read_text()))
        return {"live": None, "stack": [], "history": []}

    def live(self, specialist: str) -> Version | None:
        name = self._live_state(specialist)["live"]
        return self.version(specialist, name) if name else None

    def history(self, specialist: str) -> list[dict[str, Any]]:
        return list(self._live_state(specialist)["history"])


def live_adapter(catalog: SpecialistCatalog, specialist: SpecialistSpec) -> str | None:
    """The specialist's LoRA adapter as an absolute path, or None: the version live in the
    adapter registry (`cadre specialists promote`), else the spec's own ``adapter``. Both engines
    that load weights serve registry versions (PEFT adapters; llama.cpp converts them to GGUF
    once)."""
    model = catalog.models.get(specialist.model)
    served = model is not None and model.engine in ("vllm", "llamacpp")
    live = AdapterVersions().live(specialist.name) if served else None
    if live is not None:
        return str(live.path.resolve())
    return catalog.declared_adapter(specialist)
