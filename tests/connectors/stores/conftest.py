"""Fixtures of the store tests: one PostgreSQL server (with pgvector) per test session."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from tests.postgres_server import PG_URL_VARIABLE, PostgresServer, find_bin_dir


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """``RAGLINE_PG_URL`` when set; else a server started for this session on 127.0.0.1."""
    given = os.environ.get(PG_URL_VARIABLE)
    if given:
        yield given
        return
    bin_dir, why = find_bin_dir()
    if bin_dir is None:
        pytest.skip(
            f"needs PostgreSQL with pgvector: {why}. Run scripts/install_postgres.sh (as root, "
            f"on Debian), or set {PG_URL_VARIABLE}=postgresql://user@host:5432/db"
        )
    server = PostgresServer(bin_dir)
    try:
        yield server.start()
    finally:
        server.stop()
