"""API keys, on both databases: the plain key is shown once and only its hash is stored; a token
proves exactly one live key; revoking is for good; tenants and roles are checked."""

from __future__ import annotations

import pytest

from orchestrator.api.keys import KeyStore
from orchestrator.errors import InputError, NotFoundError
from orchestrator.storage.database import Database


def test_a_token_proves_its_own_live_key_and_nothing_else(database_url: str) -> None:
    store = KeyStore(Database(database_url))
    key, token = store.create("acme", "reviewer", "ann")
    assert token.startswith(f"cadre_{key.id}_")
    secret = token.removeprefix(f"cadre_{key.id}_")  # the secret may hold "_" itself
    assert len(secret) >= 40
    stored = store.db.query("SELECT * FROM cadre_api_keys WHERE id = ?", (key.id,))[0]
    assert secret not in str(stored), "only the secret's hash is stored"
    assert store.authenticate(token) == key
    assert key.who == f"ann (acme/reviewer, key {key.id})"
    other, other_token = store.create("acme", "reviewer", "ann")  # the same name: another key
    assert other.id != key.id and store.authenticate(other_token) == other
    for forged in (
        f"cadre_{key.id}_{secret[:-1]}",  # the secret cut short
        f"cadre_{other.id}_{secret}",  # one key's secret with another's id
        f"cadre_{key.id}_",
        f"cadre__{secret}",
        token.removeprefix("cadre_"),
        "",
    ):
        assert store.authenticate(forged) is None, forged
    store.revoke(key.id)
    assert store.authenticate(token) is None
    again = store.revoke(key.id)  # revoking twice keeps the first time
    assert again.revoked_at == store.get(key.id).revoked_at is not None
    assert store.authenticate(other_token) == other


def test_tenants_roles_and_unknown_keys_are_checked(database_url: str) -> None:
    store = KeyStore(Database(database_url))
    with pytest.raises(InputError, match="tenant 'Acme Corp'"):
        store.create("Acme Corp", "admin")
    with pytest.raises(InputError, match=r"tenant 'acme\\n'"):  # not a second 'acme'
        store.create("acme\n", "admin")
    with pytest.raises(InputError, match="key name .*: no control characters"):
        store.create("acme", "reviewer", "Rita\x1b[31m\nEvil")  # signs decisions: printed
    with pytest.raises(InputError, match="role 'root': choose one of submitter, reviewer, admin"):
        store.create("acme", "root")
    with pytest.raises(NotFoundError, match="no API key 'nope'"):
        store.revoke("nope")
    store.create("acme", "admin")
    store.create("globex", "submitter")
    assert [k.tenant for k in store.all()] == ["acme", "globex"]
    assert [k.role for k in store.all("globex")] == ["submitter"]
    assert store.all()[0].name == "acme-admin"  # the default name


def test_a_secret_holding_underscores_still_proves_its_key(database_url: str) -> None:
    """The secret is URL-safe base64, so about half of them hold "_", the separator."""
    store = KeyStore(Database(database_url))
    made = [store.create("acme", "submitter") for _ in range(24)]
    assert any("_" in token.removeprefix(f"cadre_{key.id}_") for key, token in made)
    for key, token in made:
        assert store.authenticate(token) == key
