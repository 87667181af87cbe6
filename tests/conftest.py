"""Fixtures on real things: a fresh metrics registry, the machine's Postgres and Redis.

The machine's Postgres (127.0.0.1:5432, trust, user postgres) and Redis (127.0.0.1:6379)
are shared: tests never stop, freeze or flush them. Each Postgres user gets a fresh
database (random name, dropped afterwards); each Redis user gets its own key namespace in
database 11, and only those keys are deleted afterwards.
"""

from __future__ import annotations

import os
import uuid

import psycopg
import pytest
import redis.asyncio as aioredis
from prometheus_client import CollectorRegistry

PG_ADMIN_DSN = os.environ.get("TEST_PG_ADMIN_DSN", "postgresql://postgres@127.0.0.1:5432/postgres")
REDIS_TEST_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/11")


@pytest.fixture
def registry() -> CollectorRegistry:
    """A fresh registry: nothing in the suite touches the global one."""
    return CollectorRegistry(auto_describe=True)


def _create_database() -> tuple[str, str]:
    name = "usdcop_test_" + uuid.uuid4().hex[:12]
    with psycopg.connect(PG_ADMIN_DSN, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return name, PG_ADMIN_DSN.rsplit("/", 1)[0] + "/" + name


def _drop_database(name: str) -> None:
    with psycopg.connect(PG_ADMIN_DSN, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def pg_dsn():
    """DSN of a fresh database on the machine's Postgres, dropped afterwards."""
    name, dsn = _create_database()
    try:
        yield dsn
    finally:
        _drop_database(name)


@pytest.fixture
def redis_namespace() -> str:
    """A key namespace of this test's own."""
    return "usdcop_test_" + uuid.uuid4().hex[:10]


@pytest.fixture
async def redis_url(redis_namespace):
    """URL of the machine's Redis (database 11); the test's namespace is deleted afterwards."""
    yield REDIS_TEST_URL
    client = aioredis.from_url(REDIS_TEST_URL)
    try:
        keys = [k async for k in client.scan_iter(match=f"{redis_namespace}:*", count=500)]
        if keys:
            await client.delete(*keys)
    finally:
        await client.aclose()
