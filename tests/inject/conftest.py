"""Campaign-store fixtures: `store_url` runs a test against a SQLite file and against PostgreSQL
(the session's `postgres_url`, a throwaway server: see tests/conftest.py)."""

import uuid

import pytest


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request, tmp_path):
    """A campaign store: a fresh SQLite file, or the session's PostgreSQL database (tests give
    their campaigns unique names, see `campaign_name`)."""
    if request.param == "sqlite":
        return str(tmp_path / "store.db")
    return request.getfixturevalue("postgres_url")


@pytest.fixture
def campaign_name(request):
    """A campaign name no other test (or earlier run against the same database) uses."""
    return f"{request.node.originalname}-{uuid.uuid4().hex[:8]}"
