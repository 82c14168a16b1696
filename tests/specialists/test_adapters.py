"""Which adapter a specialist is asked with: the registry's live version on an engine that loads
weights, else the adapter its spec names, else none."""

from __future__ import annotations

from pathlib import Path

import pytest

from orchestrator import config
from orchestrator.catalog import load_specialists
from orchestrator.errors import NotFoundError
from orchestrator.specialists.adapters import AdapterVersions, live_adapter
from orchestrator.specialize.registry import Registry
from tests.catalogs import scripted_model, specialist, write_catalog


def weighted_model(name: str) -> dict[str, object]:
    """A llama.cpp model whose weights are a file on disk (never loaded here)."""
    return {
        "name": name,
        "engine": "llamacpp",
        "weights": {"kind": "path", "path": "weights.gguf"},
        "context_length": 512,
    }


@pytest.fixture
def registry(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Registry:
    monkeypatch.setenv(config.ADAPTERS_ENV, str(tmp_path / "adapters"))
    return Registry()


def live_version(registry: Registry, name: str) -> Path:
    version = registry.claim(name, {"base_model": "m"})
    (version.path / "adapter_config.json").write_text("{}")
    registry.update_meta(version, trained_at=1.0)
    registry.promote(name, version.name, "exact_match", by="test", force=True)
    return version.path.resolve()


def test_the_live_version_answers_and_rollback_returns_to_the_declared_adapter(
    tmp_path: Path, registry: Registry
) -> None:
    root = write_catalog(
        tmp_path / "agents", [weighted_model("m")], [specialist("s", "m", adapter="s.gguf")]
    )
    (root / "models" / "weights.gguf").write_bytes(b"GGUF")
    (root / "specialists" / "s.gguf").write_bytes(b"GGUF")
    catalog = load_specialists(root)
    spec = catalog.specialist("s")
    declared = str(root / "specialists" / "s.gguf")
    assert live_adapter(catalog, spec) == declared
    assert live_adapter(catalog, spec) == catalog.declared_adapter(spec)
    live = live_version(registry, "s")
    assert live_adapter(catalog, spec) == str(live)
    assert AdapterVersions().live("s") is not None
    registry.rollback("s", by="test")
    assert live_adapter(catalog, spec) == declared


def test_an_engine_without_weights_is_never_given_a_registry_version(
    tmp_path: Path, registry: Registry
) -> None:
    catalog = load_specialists(
        write_catalog(tmp_path / "agents", [scripted_model("m")], [specialist("s", "m")])
    )
    live_version(registry, "s")
    assert live_adapter(catalog, catalog.specialist("s")) is None


def test_the_read_side_lists_versions_oldest_first_and_names_the_missing_one(
    registry: Registry,
) -> None:
    first, second = registry.claim("s", {}), registry.claim("s", {})
    reader = AdapterVersions()
    assert [v.name for v in reader.versions("s")] == [first.name, second.name] == ["v1", "v2"]
    assert reader.live("s") is None and reader.history("s") == []
    with pytest.raises(NotFoundError, match=r"no adapter version 'v9' \(versions: v1, v2\)"):
        reader.version("s", "v9")
