"""The Python prober: async and sync checks, `module:function`, bad answers, exceptions."""

import asyncio
import functools
import math
import threading

import pytest

from exporter.config.model import ServiceConfig
from exporter.health.probes import ProbeContext, run_probe
from exporter.health.probes.python import resolve_check


async def probe(limit=2.0, **kw):
    return await run_probe(ServiceConfig(name="model", type="python", **kw), ProbeContext(timeout=limit))


async def test_async_check():
    async def check():
        return {"success": True, "latency_ms": 12.5, "metadata": {"model": "v3"}}

    r = await probe(check_fn=check)
    assert (r.success, r.reported, r.reported_metadata) == (True, "healthy", {"model": "v3"})
    assert r.extra == {"reported_latency_ms": 12.5}
    assert r.probe_metadata()["reported_latency_ms"] == 12.5


async def test_sync_check_runs_off_the_event_loop():
    seen = []

    def check():
        seen.append(threading.current_thread() is threading.main_thread())
        return {"success": True}

    r = await probe(check_fn=check)
    assert r.success and r.extra == {} and r.reported_metadata is None
    assert seen == [False]


async def test_blocking_sync_check_times_out_without_blocking_the_loop():
    release = threading.Event()

    def check():
        release.wait(10)
        return {"success": True}

    try:
        r = await probe(check_fn=check, limit=0.2)
        assert r.reason == "timeout"
    finally:
        release.set()


async def test_callable_object_and_partial():
    class Check:
        async def __call__(self):
            return {"success": True}

    async def with_arg(flag):
        return {"success": flag}

    assert (await probe(check_fn=Check())).success
    assert (await probe(check_fn=functools.partial(with_arg, True))).success
    assert (await probe(check_fn=lambda: with_arg(True))).success  # sync returning a coroutine


async def test_check_reporting_failure():
    async def check():
        return {"success": False, "metadata": {"error": "model not loaded"}}

    r = await probe(check_fn=check)
    assert (r.success, r.reason, r.reported) == (False, "reported_unhealthy", "unhealthy")
    assert r.reported_metadata == {"error": "model not loaded"}


async def test_raising_check_is_other_with_class_and_message():
    async def check():
        raise RuntimeError("GPU on fire " + "!" * 500)

    r = await probe(check_fn=check)
    assert r.reason == "other" and r.message.startswith("RuntimeError: GPU on fire")
    assert len(r.message) <= 200 and "Traceback" not in r.message


async def test_raising_sync_check():
    def check():
        raise KeyError("weights")

    r = await probe(check_fn=check)
    assert (r.reason, r.message) == ("other", "KeyError: 'weights'")


@pytest.mark.parametrize("raised", [SystemExit(3), KeyboardInterrupt()])
async def test_a_check_exiting_the_process_is_only_a_failure(raised):
    async def check():
        raise raised

    def sync_check():
        raise raised

    for fn in (check, sync_check):
        r = await probe(check_fn=fn)
        assert r.reason == "other" and r.message.startswith(type(raised).__name__)


@pytest.mark.parametrize(
    ("answer", "message"),
    [
        (None, "check returned NoneType, expected a mapping {success, latency_ms, metadata}"),
        (True, "check returned bool, expected a mapping {success, latency_ms, metadata}"),
        ([1], "check returned list, expected a mapping {success, latency_ms, metadata}"),
        ({}, "check's 'success' must be true or false"),
        ({"success": "yes"}, "check's 'success' must be true or false"),
        ({"success": 1}, "check's 'success' must be true or false"),
        ({"success": True, "latency_ms": -1}, "check's 'latency_ms' must be a finite number >= 0"),
        ({"success": True, "latency_ms": math.nan}, "check's 'latency_ms' must be a finite number >= 0"),
        ({"success": True, "latency_ms": "5"}, "check's 'latency_ms' must be a finite number >= 0"),
        ({"success": True, "latency_ms": True}, "check's 'latency_ms' must be a finite number >= 0"),
        ({"success": True, "metadata": [1]}, "check's 'metadata' must be an object"),
        ({"success": True, "status": "ok", "zzz": 1}, "check returned unknown key(s): status, zzz"),
    ],
)
async def test_bad_answers_are_bad_body(answer, message):
    async def check():
        return answer

    r = await probe(check_fn=check)
    assert (r.success, r.reason, r.message) == (False, "bad_body", message)


@pytest.fixture
def check_module(tmp_path, monkeypatch):
    (tmp_path / "usdcop_probe_checks.py").write_text(
        "CALLS = []\n"
        "async def ready():\n"
        "    CALLS.append(1)\n"
        "    return {'success': True, 'latency_ms': 3}\n"
        "class Nested:\n"
        "    @staticmethod\n"
        "    def sync():\n"
        "        return {'success': False}\n"
        "NOT_CALLABLE = 5\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    resolve_check.cache_clear()
    yield "usdcop_probe_checks"
    resolve_check.cache_clear()


async def test_check_by_name_is_resolved_once(check_module):
    for _ in range(3):
        r = await probe(check=f"{check_module}:ready")
        assert r.success and r.extra == {"reported_latency_ms": 3.0}
    info = resolve_check.cache_info()
    assert (info.misses, info.hits) == (1, 2)
    r = await probe(check=f"{check_module}:Nested.sync")
    assert r.reason == "reported_unhealthy"


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("no_colon", "invalid check 'no_colon': expected module.path:function"),
        (":fn", "invalid check ':fn': expected module.path:function"),
        ("usdcop_no_such_module_xyz:fn", "check 'usdcop_no_such_module_xyz:fn': cannot import "
         "usdcop_no_such_module_xyz: ModuleNotFoundError: No module named 'usdcop_no_such_module_xyz'"),
        ("{mod}:missing", "check 'usdcop_probe_checks:missing': usdcop_probe_checks has no missing"),
        ("{mod}:NOT_CALLABLE", "check 'usdcop_probe_checks:NOT_CALLABLE': "
         "usdcop_probe_checks:NOT_CALLABLE is not callable (it is int)"),
    ],
)
async def test_unresolvable_check_is_other(check_module, spec, message):
    r = await probe(check=spec.format(mod=check_module))
    assert (r.reason, r.message) == ("other", message)


async def test_a_check_waiting_forever_times_out():
    async def check():
        await asyncio.Event().wait()

    r = await probe(check_fn=check, limit=0.1)
    assert (r.reason, r.message) == ("timeout", "no answer within 0.1s")
