"""run_probe: dispatch, the hard timeout, duration, unexpected errors, cancellation."""

import asyncio

import pytest

from exporter.config.model import ServiceConfig
from exporter.health.probes import PROBERS, ProbeContext, run_probe
from exporter.health.result import ProbeResult


def test_dispatch_table_covers_every_type():
    from exporter.config.probe_types import PROBE_TYPES

    assert sorted(PROBERS) == sorted(PROBE_TYPES)
    # The table is keyed by the configuration's list itself, in its order, and each type
    # has the prober of its name.
    assert tuple(PROBERS) == PROBE_TYPES
    assert all(prober.__name__ == f"probe_{kind}" for kind, prober in PROBERS.items())


async def test_unknown_type():
    r = await run_probe(ServiceConfig(name="x", type="smtp"), ProbeContext(timeout=1))
    assert (r.reason, r.message) == ("other", "unknown probe type 'smtp'")


async def test_duration_is_measured_by_the_handler():
    async def check():
        await asyncio.sleep(0.05)
        return {"success": True, "latency_ms": 0.001}

    r = await run_probe(ServiceConfig(name="x", type="python", check_fn=check), ProbeContext(timeout=1))
    assert r.success and r.duration_s >= 0.05  # the check's own latency_ms does not replace it


async def test_unexpected_exception_becomes_other(monkeypatch):
    async def broken(service, ctx):
        raise ZeroDivisionError("division by zero")

    monkeypatch.setitem(PROBERS, "tcp", broken)
    r = await run_probe(ServiceConfig(name="x", type="tcp", address="h:1"), ProbeContext(timeout=1))
    assert (r.success, r.reason, r.message) == (False, "other", "ZeroDivisionError: division by zero")


async def test_unknown_reason_from_a_prober_becomes_other(monkeypatch):
    async def odd(service, ctx):
        return ProbeResult(success=False, duration_s=0, reason="gremlins")

    monkeypatch.setitem(PROBERS, "tcp", odd)
    r = await run_probe(ServiceConfig(name="x", type="tcp", address="h:1"), ProbeContext(timeout=1))
    assert (r.reason, r.message) == ("other", "prober gave unknown reason 'gremlins'")


async def test_timeout():
    started = asyncio.Event()

    async def check():
        started.set()
        await asyncio.Event().wait()

    r = await run_probe(ServiceConfig(name="x", type="python", check_fn=check), ProbeContext(timeout=0.1))
    assert started.is_set()
    assert (r.success, r.reason, r.message) == (False, "timeout", "no answer within 0.1s")


async def test_cancellation_propagates():
    started = asyncio.Event()

    async def check():
        started.set()
        await asyncio.Event().wait()

    task = asyncio.create_task(
        run_probe(ServiceConfig(name="x", type="python", check_fn=check), ProbeContext(timeout=30))
    )
    await started.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
