"""The adapter registry: every trained version of every specialist, and which one is live.

    .cadre/adapters/SPECIALIST/            ($CADRE_ADAPTERS_DIR instead of .cadre/adapters)
        v1/  adapter_config.json  adapter_model.safetensors  meta.json
        v2/  ...
        live.json   {"live": "v2", "stack": ["v1", "v2"], "history": [{"version", "at", "by",
                    "forced", "why"}, ...]}

A version is never overwritten: its number is claimed by creating its folder, which only one
process can do. ``meta.json`` holds what made it (base model, training data hash, settings,
training metrics) and, once `cadre eval` ran, its scores. A version becomes live only if its eval
beats the live one's on the specialist's declared metric, on the same held-out data, unless
forced (and the force is recorded); rollback returns to the version live before.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from orchestrator.errors import ConflictError, InputError
from orchestrator.specialists.adapters import AdapterVersions, Version


class Registry(AdapterVersions):
    """Adapter versions for every specialist under one folder: claiming new ones, and which one
    is live (promotion against eval scores, rollback)."""

    def claim(self, specialist: str, meta: dict[str, Any]) -> Version:
        """A new, empty version folder with the next number; never an existing one."""
        folder = self.folder(specialist)
        folder.mkdir(parents=True, exist_ok=True)
        number = max((v.number for v in self.versions(specialist)), default=0) + 1
        while True:
            path = folder / f"v{number}"
            try:
                path.mkdir()
            except FileExistsError:  # another process claimed it first
                number += 1
                continue
            self.write_meta(path, {**meta, "version": path.name, "created_at": time.time()})
            return self._version(specialist, path)

    @staticmethod
    def write_meta(path: Path, meta: dict[str, Any]) -> None:
        partial = path / "meta.json.partial"
        partial.write_text(json.dumps(meta, indent=2, sort_keys=True))
        partial.replace(path / "meta.json")

    def update_meta(self, version: Version, **changes: Any) -> Version:
        self.write_meta(version.path, {**version.meta, **changes})
        return self._version(version.specialist, version.path)

    def _set_live(
        self, specialist: str, name: str | None, entry: dict[str, Any], stack: list[str]
    ) -> None:
        state = self._live_state(specialist)
        state["live"], state["stack"] = name, stack
        state["history"].append({**entry, "version": name, "at": time.time()})
        partial = self._live_file(specialist).with_suffix(".partial")
        partial.write_text(json.dumps(state, indent=2))
        partial.replace(self._live_file(specialist))

    def promote(
        self, specialist: str, name: str, metric: str, *, by: str, force: bool = False
    ) -> Version:
        """Make ``name`` live if its eval beats the live version's (or the base model's, when
        none is live) on ``metric``; ``force`` skips the comparison and is recorded."""
        candidate = self.version(specialist, name)
        if not candidate.complete:
            raise InputError(f"{specialist} {name} did not finish training; it cannot go live")
        current = self.live(specialist)
        if current is not None and current.name == name:
            raise ConflictError(f"{specialist} {name} is already live")
        why = "forced"
        if not force:
            why = self._beats(candidate, current, metric)
        stack = [*self._live_state(specialist)["stack"], name]
        self._set_live(specialist, name, {"by": by, "forced": force, "why": why}, stack)
        return candidate

    def _beats(self, candidate: Version, current: Version | None, metric: str) -> str:
        ours = (candidate.meta.get("eval") or {}).get(metric)
        if ours is None:
            raise InputError(
                f"{candidate.specialist} {candidate.name} has no {metric} score yet; run "
                f"`cadre eval {candidate.specialist} --data HELDOUT.jsonl` first (or --force)"
            )
        if current is not None:
            theirs = (current.meta.get("eval") or {}).get(metric)
            against = f"live {current.name}"
        else:
            theirs = (candidate.meta.get("eval") or {}).get("base", {}).get(metric)
            # How the specialist serves with no version live: its shipped adapter, if it
            # names one, else its prompt alone.
            against = f"the specialist as it serves ({(theirs or {}).get('as', 'no adapter')})"
        if theirs is None:
            raise InputError(
                f"{against} has no {metric} score to compare with; run `cadre eval` (or --force)"
            )
        if ours["data"] != theirs["data"]:
            raise ConflictError(
                f"{candidate.name} and {against} were scored on different held-out data; "
                "evaluate both on the same file (or --force)"
            )
        if ours["score"] <= theirs["score"]:
            raise ConflictError(
                f"{candidate.specialist} {candidate.name} scores {ours['score']:.3f} on {metric}; "
                f"{against} scores {theirs['score']:.3f}. It does not go live (--force to "
                "override, recorded)"
            )
        return f"{metric} {ours['score']:.3f} > {theirs['score']:.3f} ({against})"

    def rollback(self, specialist: str, *, by: str) -> Version | None:
        """Return to the version that was live before the current one (None: the bare base)."""
        state = self._live_state(specialist)
        if state["live"] is None:
            raise InputError(f"{specialist} has no live adapter version to roll back")
        stack = state["stack"][:-1]
        previous = stack[-1] if stack else None
        self._set_live(specialist, previous, {"by": by, "forced": False, "why": "rollback"}, stack)
        return self.version(specialist, previous) if previous else None
