"""A real PostgreSQL for the tests: one fresh database per test session, dropped at the end.

The server comes from `CHARBOT_TEST_POSTGRES_URL` (default: the local server, user postgres,
trust authentication); its user must be allowed to CREATE DATABASE. Where none is reachable the
tests that need it are skipped with one line saying how to enable them, unless
`CHARBOT_REQUIRE_POSTGRES=1` (CI) turns that into a failure.
"""

from __future__ import annotations

import asyncio
import os
import secrets
from collections.abc import AsyncIterator, Iterator
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest
import pytest_asyncio

from bot.stores.urls import mask_url

URL_ENV = "CHARBOT_TEST_POSTGRES_URL"
REQUIRE_ENV = "CHARBOT_REQUIRE_POSTGRES"
DEFAULT_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
#: A password for URLs in the tests (trust authentication ignores it): it must never show.
SECRET = "pw-never-shown-7f3a"


def with_database(url: str, database: str) -> str:
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, "/" + database, parts.query, parts.fragment))


async def run_admin(url: str, statement: str) -> None:
    """One statement on a connection of its own (CREATE/DROP DATABASE cannot run in a pool's)."""
    conn = await asyncpg.connect(url, timeout=5)
    try:
        await conn.execute(statement)
    finally:
        await conn.close()


@pytest.fixture(scope="session")
def postgres_database() -> Iterator[str]:
    """The URL of a database created for this test session (dropped afterwards)."""
    admin = os.environ.get(URL_ENV) or DEFAULT_URL
    name = f"charbot_test_{os.getpid()}_{secrets.token_hex(3)}"
    try:
        asyncio.run(run_admin(admin, f'CREATE DATABASE "{name}"'))
    except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
        message = (
            f"no PostgreSQL at {mask_url(admin)} ({type(exc).__name__}); set {URL_ENV} to a "
            "server whose user may create databases to run these tests"
        )
        if os.environ.get(REQUIRE_ENV) == "1":
            pytest.fail(f"{message} ({REQUIRE_ENV}=1)", pytrace=False)
        pytest.skip(message)
    try:
        yield with_database(admin, name)
    finally:
        asyncio.run(run_admin(admin, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest_asyncio.fixture
async def postgres_url(postgres_database: str) -> AsyncIterator[str]:
    """The session's database, emptied of charbot's tables: each test starts from nothing."""
    conn = await asyncpg.connect(postgres_database, timeout=5)
    try:
        tables = await conn.fetch(
            "SELECT tablename FROM pg_tables WHERE schemaname = current_schema()"
            r" AND tablename LIKE 'charbot\_%'"
        )
        if tables:
            await conn.execute(f"DROP TABLE {', '.join(t['tablename'] for t in tables)}")
    finally:
        await conn.close()
    yield postgres_database


def with_password(url: str, password: str = SECRET, port: int | None = None) -> str:
    """`url` with a password (trust authentication ignores it) and optionally another port."""
    parts = urlsplit(url)
    host = f"{parts.hostname}:{port or parts.port or 5432}"
    netloc = f"{parts.username or 'postgres'}:{password}@{host}"
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


async def kill_connections(url: str) -> int:
    """pg_terminate_backend on every other connection to the test database."""
    conn = await asyncpg.connect(url)
    try:
        killed = await conn.fetchval(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
            " WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )
        return int(killed)
    finally:
        await conn.close()
