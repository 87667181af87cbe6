"""The fast /metrics path: byte for byte what prometheus_client writes, promtool-clean,
following every state change, yielding to the loop, gzip when asked."""

from __future__ import annotations

import asyncio
import gzip
import hashlib
import math
import random
import subprocess
import zlib

import pytest
from hypothesis import given
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.openmetrics.exposition import generate_latest as om_generate_latest
from prometheus_client.utils import floatToGoString

from exporter.config.model import Config, ServiceConfig
from exporter.exposition import (
    CACHE_MIN,
    SegmentCache,
    accepts_gzip,
    gzip_pieces,
    render,
    render_now,
    render_pieces,
)
from exporter.health.checker import HealthChecker
from exporter.health.collector import ServiceCollector
from exporter.health.registry import ServiceRegistry
from exporter.health.result import ProbeResult
from exporter.samples import format_sample
from tests.support.tools import require_tool

OM = "application/openmetrics-text; version=1.0.0"
PHASES = {"resolve": 0.0001, "connect": 0.00025, "tls": 0.003, "processing": 0.0101, "transfer": 2e-05}


def service(name: str, **kw) -> ServiceConfig:
    return ServiceConfig(name=name, type=kw.pop("type", "http"), url="http://127.0.0.1:9/health", **kw)


def result(k: int) -> ProbeResult:
    """A different probe outcome for each k: failures, phases, certificates, reported details."""
    ok = k % 4 != 1
    return ProbeResult(
        success=ok,
        reason=None if ok else ("connect", "status", "timeout")[k % 3],
        duration_s=0.0031 * (k + 1),
        http_status=(200, 503, None)[k % 3],
        phases=PHASES if k % 2 else {},
        tls_expiry=1.8e9 + k if k % 3 == 0 else None,
        details={"uptime": 1234567.5 * k, "requests_per_minute": 60 + k, "error_rate": 0.01,
                 "memory_usage_mb": 10.5} if k % 5 else {},
    )


def checker_with(services: list[ServiceConfig], probes: int = 3) -> HealthChecker:
    checker = HealthChecker(ServiceRegistry(Config(services=tuple(services))))
    for i, name in enumerate(checker.states):
        if i % 6 == 5:
            continue  # some stay unknown
        for k in range(probes):
            checker.record(name, result(i + k))
        checker.states[name].skipped = i % 3
    return checker


def registry_for(checker: HealthChecker) -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=True)
    Counter("usdcop_test_things", "Other families go through the library.", ["kind"],
            registry=registry).labels("a").inc(3)
    Histogram("usdcop_test_seconds", "A plain histogram.", registry=registry).observe(0.2)
    registry.register(ServiceCollector(checker))
    return registry


def mixed_services(n: int) -> list[ServiceConfig]:
    out = []
    for i in range(n):
        kw = {}
        if i % 3 == 0:
            kw["labels"] = (("team", 'desk "fx"\\\nline'), ("tier", "critical"))
        elif i % 3 == 1:
            kw["labels"] = (("zone", "b"),)
        out.append(service(f"svc-{i:03d}", interval=0.25 * (i + 1), timeout=2_000_000.0 if i == 7 else 5.0, **kw))
    return out


def test_fast_text_equals_the_library_byte_for_byte():
    registry = registry_for(checker_with(mixed_services(40)))
    assert render_now(registry)[0] == generate_latest(registry)
    assert render_now(registry, OM)[0] == om_generate_latest(registry)


def test_fast_text_follows_every_change():
    checker = checker_with(mixed_services(12))
    registry = registry_for(checker)
    first = render_now(registry)[0]
    checker.record("svc-002", result(1))  # a failure
    checker.states["svc-004"].skipped += 5
    checker.registry.unregister("svc-003")
    checker.sync()
    after, _ = render_now(registry)
    assert after != first
    assert after == generate_latest(registry)
    assert b'service="svc-003"' not in after
    assert b'usdcop_probe_skipped_total{service="svc-004"} 6.0' in after
    # a label only the new service has reaches every service's info line
    checker.register_service("svc-new", url="http://127.0.0.1:9/h", labels={"owner": "ops"})
    text = render_now(registry)[0].decode()
    assert text.encode() == generate_latest(registry)
    assert 'usdcop_service_info{critical="true",owner="",service="svc-000",team=' in text
    assert 'usdcop_service_status{service="svc-new",status="unknown"} 1.0' in text


def test_counts_past_a_million_switch_to_go_exponents_as_the_library_does():
    checker = checker_with([service("busy"), service("calm")])
    registry = registry_for(checker)
    render_now(registry)
    busy = checker.states["busy"]
    busy.buckets[0] += 2_345_678
    busy.probes["success"] += 1_000_000
    busy.failures["timeout"] = 1_500_000
    busy.probes["failure"] += 1_500_000
    busy.version += 1
    body = render_now(registry)[0]
    assert body == generate_latest(registry)
    assert b'usdcop_service_probes_total{result="success",service="busy"} 1.000002e+06' in body
    # the same figures reported again keep their lines; new ones replace them
    checker.record("calm", result(2))
    checker.record("calm", result(7))
    assert render_now(registry)[0] == generate_latest(registry)


def test_a_service_removed_and_added_again_starts_from_its_new_state():
    svc = service("again")
    checker = checker_with([svc])
    registry = registry_for(checker)
    assert b'usdcop_service_probes_total{result="success",service="again"}' in render_now(registry)[0]
    checker.registry.unregister("again")
    checker.sync()
    render_now(registry)
    checker.registry.replace(Config(services=(svc,)))
    checker.sync()
    out = render_now(registry)[0]
    assert b'usdcop_service_status{service="again",status="unknown"} 1.0' in out
    assert out == generate_latest(registry)


def test_promtool_accepts_the_fast_text(tmp_path):
    promtool = require_tool("promtool")
    registry = registry_for(checker_with(mixed_services(60)))
    body, _ = render_now(registry)
    out = subprocess.run([promtool, "check", "metrics"], input=body, capture_output=True, timeout=60)
    assert out.returncode == 0 and not out.stdout and not out.stderr, out.stdout + out.stderr


def test_an_empty_checker_still_writes_every_family():
    registry = registry_for(HealthChecker())
    body, _ = render_now(registry)
    assert body == generate_latest(registry)
    assert b"# TYPE usdcop_service_probe_duration_seconds histogram" in body
    assert b'usdcop_overall_status{status="unknown"} 1.0' in body  # no service: nothing seen
    assert b'usdcop_overall_status{status="healthy"} 0.0' in body


async def test_render_yields_to_the_loop_while_it_works():
    registry = registry_for(checker_with(mixed_services(80)))
    ran = asyncio.Event()
    asyncio.get_running_loop().call_soon(ran.set)
    body, content_type = await render(registry, "", slice_s=0.0)
    assert ran.is_set()  # the callback ran before the render finished
    assert body == generate_latest(registry) and content_type.startswith("text/plain; version=0.0.4")


async def test_openmetrics_and_escaping_choices():
    registry = registry_for(checker_with(mixed_services(10)))
    body, content_type = await render(registry, OM)
    assert content_type.startswith("application/openmetrics-text")
    assert body == om_generate_latest(registry) and body.endswith(b"# EOF\n")
    # `escaping=dots` rewrites legal names: the library renders it whole
    dots = "application/openmetrics-text; version=1.0.0; escaping=dots"
    body, content_type = await render(registry, dots)
    assert content_type.endswith("escaping=dots")
    assert body == om_generate_latest(registry, escaping="dots")


def test_generic_consumers_still_read_samples():
    checker = checker_with([service("one")], probes=2)
    registry = registry_for(checker)
    assert registry.get_sample_value("usdcop_service_probes_total", {"service": "one", "result": "failure"}) == 1
    assert registry.get_sample_value("usdcop_service_probe_duration_seconds_count", {"service": "one"}) == 2


@pytest.mark.parametrize(("header", "ok"), [
    ("gzip", True), ("gzip, deflate", True), ("deflate, GZIP;q=0.5", True), ("*", True),
    ("gzip;q=0", False), ("gzip; q=0.0", False), ("identity", False), ("", False),
    ("gzip;q=nonsense", False), ("br", False),
])
def test_accept_encoding(header, ok):
    assert accepts_gzip(header) is ok


async def test_gzip_round_trip():
    body = b"usdcop_service_up{service=\"x\"} 1.0\n" * 40_000
    packed = b"".join(await gzip_pieces([body[:1000], body[1000:]], chunk=64 * 1024))
    assert gzip.decompress(packed) == body and len(packed) < len(body) // 10


async def test_gzip_writes_large_unchanged_pieces_from_the_scrape_before():
    rnd = random.Random(7)
    big = [b"".join(b'usdcop_x{service="s%d"} %d\n' % (j, rnd.randrange(10**9)) for j in range(900))
           for _ in range(4)]
    assert all(len(piece) >= CACHE_MIN for piece in big)
    cache = SegmentCache()
    first = [b"# HELP a\n", big[0], b"a 1\n", big[1], big[2]]
    packed = b"".join(await gzip_pieces(first, chunk=4096, cache=cache))
    assert gzip.decompress(packed) == b"".join(first)
    assert (cache.hits, cache.misses) == (0, 3)
    kept = dict(cache.segments)
    # one piece changed, one gone, one new, small ones around and in between
    second = [b"# HELP a\n", big[0], b"a 2\n" * 50, big[3], big[2], big[0], b"# EOF\n"]
    packed = b"".join(await gzip_pieces(second, chunk=4096, cache=cache))
    assert gzip.decompress(packed) == b"".join(second)
    inflate = zlib.decompressobj(47)  # as curl and aiohttp's client read it
    assert inflate.decompress(packed) == b"".join(second) and inflate.eof and not inflate.unused_data
    assert (cache.hits, cache.misses) == (3, 4)  # big[0] twice and big[2] as they were
    for piece in (big[0], big[2]):
        key = (len(piece), hashlib.sha256(piece).digest())
        assert cache.segments[key] is kept[key] and kept[key] in packed
    assert len(cache.segments) == 3  # only what the newest scrape wrote


def _checksum_twins() -> tuple[bytes, bytes]:
    """Two pieces of Prometheus text, differing in some values' last digit, with the same
    length, CRC-32 and Adler-32 (what a probed service's reported numbers could be made to
    do): Adler-32 does not see +1/-2/+1 on three equally spaced lines, and CRC-32 is linear,
    so some set of such triplets cancels out."""
    lines = [b'usdcop_service_check_duration_seconds{service="svc-%04d"} 0.%06d\n'
             % (i, 300000 + 7 * i)
             for i in range(300)]
    width = len(lines[0])
    base = b"".join(lines)
    digit = width - 2

    def changed(triplets):
        out = bytearray(base)
        for k in triplets:
            for line, step in ((3 * k, 1), (3 * k + 1, -2), (3 * k + 2, 1)):
                out[line * width + digit] += step
        return bytes(out)

    usable = [k for k in range(100)
              if all(48 <= base[(3 * k + j) * width + digit] + step <= 57
                     for j, step in ((0, 1), (1, -2), (2, 1)))][:40]
    reference = zlib.crc32(base)
    basis: dict[int, tuple[int, int]] = {}
    for index, k in enumerate(usable):
        vector, tag = zlib.crc32(changed([k])) ^ reference, 1 << index
        while vector:
            top = vector.bit_length() - 1
            if top not in basis:
                basis[top] = (vector, tag)
                break
            vector, tag = vector ^ basis[top][0], tag ^ basis[top][1]
        if not vector:
            return base, changed([usable[i] for i in range(len(usable)) if tag >> i & 1])
    raise AssertionError("no twin found")


async def test_gzip_never_reuses_a_segment_for_a_different_piece_with_equal_checksums():
    first, second = _checksum_twins()
    assert first != second and len(first) == len(second) >= CACHE_MIN
    assert (zlib.crc32(first), zlib.adler32(first)) == (zlib.crc32(second), zlib.adler32(second))
    cache = SegmentCache()
    await gzip_pieces([b"# HELP x\n", first], cache=cache)
    packed = b"".join(await gzip_pieces([b"# HELP x\n", second], cache=cache))
    assert gzip.decompress(packed) == b"# HELP x\n" + second
    assert cache.hits == 0


async def test_metrics_route_gzips_when_asked(aiohttp_client, tmp_path, registry):
    from exporter.app import create_app
    from exporter.settings import load_settings

    lines = "".join(f"  - name: s{i}\n    type: tcp\n    address: 127.0.0.1:9\n" for i in range(30))
    path = tmp_path / "services.yaml"
    path.write_text("services:\n" + lines)
    settings = load_settings({"EXPORTER_CONFIG": str(path), "EXPORTER_SCHEDULER": "off",
                              "AUDIT_SQLITE_PATH": str(tmp_path / "a.sqlite3"),
                              "AUDIT_SPOOL_DIR": str(tmp_path / "spool"),
                              "AUDIT_CHECKPOINT_DIR": str(tmp_path / "cp")})
    client = await aiohttp_client(create_app(settings, registry))
    plain = await client.get("/metrics", headers={"Accept-Encoding": "identity"}, auto_decompress=False)
    packed = await client.get("/metrics", headers={"Accept-Encoding": "gzip"}, auto_decompress=False)
    assert plain.status == packed.status == 200
    assert "Content-Encoding" not in plain.headers and packed.headers["Content-Encoding"] == "gzip"
    assert int(plain.headers["Content-Length"]) == len(await plain.read())
    text = gzip.decompress(await packed.read()).decode()
    assert 'usdcop_service_status{service="s29",status="unknown"} 1.0' in text
    assert text.splitlines()[:5] == (await plain.text()).splitlines()[:5]


@given(st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.integers(min_value=-(10**18), max_value=10**18),
    st.booleans(),
))
def test_number_format_is_the_library_s(value):
    assert format_sample(value) == floatToGoString(value)


def test_number_format_edges():
    for value in (0, -0.0, 999_999, 1_000_000, 1e21, 123456.7, 1234567.8, -1234567.8, 5e-324, math.pi):
        assert format_sample(value) == floatToGoString(value)


def test_a_probe_result_is_rendered_as_it_lands_and_the_scrape_finds_it_ready():
    checker = checker_with(mixed_services(6))
    collector = ServiceCollector(checker)
    registry = CollectorRegistry(auto_describe=True)
    registry.register(collector)
    render_now(registry)  # the first scrape builds every block
    block = collector._blocks["svc-001"]
    checker.record("svc-001", result(1))  # a failure, with new counts and figures
    assert block.version == checker.states["svc-001"].version  # rendered before any scrape
    before = list(block.parts)
    assert render_now(registry)[0] == generate_latest(registry)
    assert block.parts == before  # the scrape had nothing left to render for it
    assert 'usdcop_service_up{service="svc-001"} 0.0\n' in block.parts


async def test_a_scrape_joins_the_services_lines_in_chunks_between_yields(monkeypatch):
    import exporter.health.collector as collector_module

    monkeypatch.setattr(collector_module, "CHUNK", 7)
    checker = checker_with(mixed_services(40))
    registry = registry_for(checker)
    for accept in ("", OM):
        pieces, _ = await render_pieces(registry, accept, slice_s=0.0)
        expected = (generate_latest if accept == "" else om_generate_latest)(registry)
        assert b"".join(pieces) == expected
        # every per-service family comes as one piece per chunk of 7 services
        status = [p for p in pieces if p.startswith(b"usdcop_service_status{")]
        assert len(status) == 6
    empty = registry_for(HealthChecker(ServiceRegistry(Config(services=()))))
    assert b"".join((await render_pieces(empty))[0]) == generate_latest(empty)


async def test_small_pieces_go_out_gathered_into_chunks():
    from exporter.exposition import WRITE_CHUNK, Pieces

    class Recorder:
        """A body writer that keeps what it is given."""

        def __init__(self) -> None:
            self.writes: list[bytes] = []

        async def write(self, data) -> None:
            self.writes.append(bytes(data))

    pieces = [bytes([65 + i % 26]) * 3000 for i in range(1000)] + [b"z" * (WRITE_CHUNK * 2 + 5)]
    recorder = Recorder()
    await Pieces(pieces, "text/plain").write(recorder)
    assert b"".join(recorder.writes) == b"".join(pieces)
    assert all(len(w) >= WRITE_CHUNK for w in recorder.writes[:-1])
    assert all(len(w) < 2 * WRITE_CHUNK for w in recorder.writes)


def test_a_scrape_and_what_was_built_from_it_go_when_its_consumer_is_done():
    import gc
    import weakref

    registry = registry_for(checker_with(mixed_services(5)))
    families = list(registry.collect())
    family = next(f for f in families if f.name == "usdcop_service_up")
    assert len(family.samples) == 5  # what a generic consumer builds: every sample
    scrape = weakref.ref(family._scrape)
    gc.disable()  # only reference counting may free them
    try:
        del families, family
        assert scrape() is None
    finally:
        gc.enable()
