"""The aiohttp internals health/probes/http_client.py relies on are still there.

PhaseConnector overrides TCPConnector._wrap_create_connection and uses the connector's
_factory and _loop; create_session switches ClientSession._retry_connection off. An
aiohttp release that renames any of them fails here, by name, instead of quietly
timing or retrying probes differently."""

from __future__ import annotations

import inspect

import aiohttp

from exporter.health.probes.http_client import PhaseConnector, create_session


def test_the_connector_method_it_overrides_exists_with_the_arguments_it_reads():
    method = aiohttp.TCPConnector._wrap_create_connection
    assert PhaseConnector._wrap_create_connection is not method
    params = inspect.signature(method).parameters
    assert {"req", "timeout"} <= set(params), list(params)


async def test_the_connector_attributes_it_reads_exist():
    session = create_session()
    try:
        connector = session.connector
        assert isinstance(connector, PhaseConnector)
        assert callable(connector._factory)
        assert connector._loop is not None
        # Retrying a dropped idempotent request would hide the drop from the probe.
        assert session._retry_connection is False
    finally:
        await session.close()
