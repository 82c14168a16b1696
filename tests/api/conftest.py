"""The ``api`` fixture: the API alone, with no run workers."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.api.helpers import Api, make_api


@pytest.fixture
def api(tmp_path: Path) -> Api:
    """The API with no run workers: submissions stay queued (the API alone under test)."""
    return make_api(tmp_path)
