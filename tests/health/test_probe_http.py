"""The HTTP prober against real target servers on loopback."""

import asyncio

import pytest

from exporter.config.model import Condition, ServiceConfig
from exporter.health.probes import ProbeContext, run_probe
from exporter.health.probes.http import probe_http
from exporter.health.result import PHASES
from tests.support.targets import DETAILS, METADATA
from tests.support.tools import free_port


def svc(url, **kw):
    return ServiceConfig(name="target", type="http", url=url, **kw)


def cond(text, subject, op, value, *path):
    return Condition(text=text, subject=subject, path=tuple(path), op=op, value=value)


async def probe(service, limit=5.0):
    return await run_probe(service, ProbeContext(timeout=limit))


async def test_healthy_seed_format(targets):
    r = await probe(svc(targets.url("/healthy")))
    assert (r.success, r.reason, r.http_status, r.reported, r.body_format) == (True, None, 200, "healthy", "seed")
    assert r.details == {k: float(v) for k, v in DETAILS.items()}
    assert r.reported_metadata == METADATA
    assert set(r.phases) == set(PHASES)
    assert r.phases["tls"] == 0.0 and r.tls_expiry is None
    assert r.duration_s > 0 and r.message is None


@pytest.mark.parametrize(
    ("path", "success", "reason", "reported", "fmt"),
    [
        ("/degraded", True, None, "degraded", "seed"),
        ("/unhealthy", False, "reported_unhealthy", "unhealthy", "seed"),
        ("/seed/Healthy", True, None, "healthy", "seed"),
        ("/seed/banana", False, "bad_body", None, "json"),  # no format knows the word
        ("/ietf/pass", True, None, "healthy", "ietf"),
        ("/ietf/PASS", True, None, "healthy", "ietf"),
        ("/ietf/ok", True, None, "healthy", "ietf"),
        ("/ietf/up", True, None, "healthy", "ietf"),
        ("/ietf/warn", True, None, "degraded", "ietf"),
        ("/ietf/fail", False, "reported_unhealthy", "unhealthy", "ietf"),
        ("/ietf/error", False, "reported_unhealthy", "unhealthy", "ietf"),
        ("/ietf/down", False, "reported_unhealthy", "unhealthy", "ietf"),
        ("/spring/UP", True, None, "healthy", "spring"),
        ("/spring/DOWN", False, "reported_unhealthy", "unhealthy", "spring"),
        ("/spring/OUT_OF_SERVICE", False, "reported_unhealthy", "unhealthy", "spring"),
        ("/spring/UNKNOWN", True, None, None, "spring"),
        ("/json", True, None, None, "json"),
        ("/text", True, None, None, "text"),
        ("/empty", True, None, None, "empty"),
        ("/gzip-healthy", True, None, "healthy", "seed"),
        ("/garbage", False, "bad_body", None, "json"),
        ("/nan", False, "bad_body", None, "json"),
    ],
)
async def test_body_formats(targets, path, success, reason, reported, fmt):
    r = await probe(svc(targets.url(path)))
    assert (r.success, r.reason, r.reported, r.body_format) == (success, reason, reported, fmt)
    assert r.http_status == (204 if path == "/empty" else 200)


async def test_bad_body_message_names_the_problem(targets):
    r = await probe(svc(targets.url("/seed/banana")))
    assert "unknown status word 'banana'" in r.message
    r = await probe(svc(targets.url("/garbage")))
    assert r.message.startswith("JSON content type but invalid JSON")


async def test_ietf_details(targets):
    r = await probe(svc(targets.url("/ietf/warn")))
    assert r.details == {"uptime": 4321.0}
    assert r.reported_metadata["serviceId"] == "target"


@pytest.mark.parametrize(
    ("path", "expect", "success", "reason", "reported"),
    [
        ("/status/500", ("2xx",), False, "status", None),
        ("/503-pass", ("2xx",), False, "status", "healthy"),  # the worse of the two wins
        ("/spring/UNKNOWN?code=503", ("2xx",), False, "status", None),
        ("/seed/healthy?code=503", ("2xx", "503"), True, None, "healthy"),  # listed: the body decides
        ("/ietf/fail?code=503", ("2xx", "503"), False, "reported_unhealthy", "unhealthy"),
        ("/ietf/pass?code=201", ("200",), False, "status", "healthy"),
        ("/status/404", ("4xx",), True, None, None),
    ],
)
async def test_status_and_body_together(targets, path, expect, success, reason, reported):
    r = await probe(svc(targets.url(path), expect_status=expect))
    assert (r.success, r.reason, r.reported) == (success, reason, reported)
    if reason == "status":
        assert r.message == f"HTTP {r.http_status} is not in expect_status"


@pytest.mark.parametrize(
    ("fmt", "path", "success", "reason", "reported"),
    [
        ("seed", "/healthy", True, None, "healthy"),
        ("seed", "/ietf/pass", False, "bad_body", None),
        ("ietf", "/ietf/fail", False, "reported_unhealthy", "unhealthy"),
        ("spring", "/text", False, "bad_body", None),
        ("spring", "/empty", False, "bad_body", None),
        ("text", "/unhealthy", True, None, None),  # any body; only conditions look at it
        ("text", "/garbage", True, None, None),
        ("none", "/unhealthy", True, None, None),  # body not read at all
        ("none", "/endless", True, None, None),
    ],
)
async def test_configured_body_format(targets, fmt, path, success, reason, reported):
    r = await probe(svc(targets.url(path), body_format=fmt))
    assert (r.success, r.reason, r.reported, r.body_format) == (success, reason, reported, fmt)


async def test_head_reads_no_body(targets):
    r = await probe(svc(targets.url("/healthy"), method="HEAD"))
    assert (r.success, r.http_status, r.body_format, r.reported) == (True, 200, "empty", None)


async def test_headers_are_sent_and_user_agent_defaults(targets):
    conds = (
        cond('[BODY].headers.X-Token == "abc"', "BODY", "==", "abc", "headers", "X-Token"),
        cond('[BODY].headers.User-Agent == "usdcop-exporter"', "BODY", "==", "usdcop-exporter",
             "headers", "User-Agent"),
        cond('[BODY].method == "GET"', "BODY", "==", "GET", "method"),
    )
    r = await probe(svc(targets.url("/echo"), headers=(("X-Token", "abc"),), conditions=conds))
    assert r.success, r.conditions
    own = (("User-Agent", "mine/1"),)
    c = cond('[BODY].headers.User-Agent == "mine/1"', "BODY", "==", "mine/1", "headers", "User-Agent")
    r = await probe(svc(targets.url("/echo"), headers=own, conditions=(c,)))
    assert r.success, r.conditions


async def test_conditions_all_kept_and_any_failure_fails(targets):
    conds = (
        cond("[STATUS] == 200", "STATUS", "==", 200.0),
        cond("[RESPONSE_TIME] < 60s", "RESPONSE_TIME", "<", 60.0),
        cond("[BODY].details.error_rate < 0.05", "BODY", "<", 0.05, "details", "error_rate"),
        cond("[BODY].details.nope == 1", "BODY", "==", 1.0, "details", "nope"),
        cond("[CERTIFICATE_EXPIRATION] > 1d", "CERTIFICATE_EXPIRATION", ">", 86400.0),
    )
    r = await probe(svc(targets.url("/healthy"), conditions=conds))
    assert (r.success, r.reason, r.reported) == (False, "condition", "healthy")
    assert [(o.condition, o.success) for o in r.conditions] == [
        ("[STATUS] == 200", True),
        ("[RESPONSE_TIME] < 60s", True),
        ("[BODY].details.error_rate < 0.05", True),
        ("[BODY].details.nope == 1", False),
        ("[CERTIFICATE_EXPIRATION] > 1d", False),
    ]
    assert r.conditions[3].detail == "missing [BODY].details.nope"
    assert r.conditions[4].detail == "missing [CERTIFICATE_EXPIRATION]"
    assert r.message == "[BODY].details.nope == 1: missing [BODY].details.nope"
    assert r.probe_metadata()["conditions"][2] == {
        "condition": "[BODY].details.error_rate < 0.05", "success": True, "detail": "saw 0.02"}


async def test_conditions_pass(targets):
    conds = (cond("[STATUS] == 200", "STATUS", "==", 200.0),
             cond("[BODY].a.b[1] >= 2.5", "BODY", ">=", 2.5, "a", "b", 1))
    r = await probe(svc(targets.url("/json"), conditions=conds))
    assert r.success and all(o.success for o in r.conditions)


async def test_condition_on_text_body(targets):
    ok = cond('[BODY] == "OK"', "BODY", "==", "OK")
    assert (await probe(svc(targets.url("/text"), conditions=(ok,)))).success
    r = await probe(svc(targets.url("/text?body=NOPE"), conditions=(ok,)))
    assert (r.reason, r.conditions[0].detail) == ("condition", 'saw "NOPE"')


async def test_status_failure_outranks_conditions(targets):
    c = cond("[STATUS] == 200", "STATUS", "==", 200.0)
    r = await probe(svc(targets.url("/status/500"), conditions=(c,)))
    assert r.reason == "status" and r.conditions[0].success is False


async def test_huge_body_stops_at_the_cap(targets):
    r = await probe(svc(targets.url("/huge")))
    assert (r.reason, r.http_status) == ("body_too_large", 200)
    assert r.message == "body larger than max_body (1048576 bytes)"
    r = await probe(svc(targets.url("/huge?bytes=2000"), max_body=2000))
    assert r.success and r.body_format == "text"


async def test_gzip_bomb_stops_at_the_cap_after_decompression(targets):
    r = await probe(svc(targets.url("/gzip-bomb"), max_body=64 * 1024))
    assert r.reason == "body_too_large"


async def test_endless_body_stops_at_the_cap(targets):
    r = await probe(svc(targets.url("/endless"), max_body=256 * 1024))
    assert r.reason == "body_too_large"


@pytest.mark.parametrize("path", ["/hang", "/drip?ms=20"])
async def test_hanging_and_dripping_targets_time_out(targets, path):
    r = await probe(svc(targets.url(path)), limit=0.3)
    assert (r.success, r.reason) == (False, "timeout")
    assert r.message == "no answer within 0.3s"


async def test_reset_is_connect_and_never_retried(targets):
    r = await probe(svc(targets.url("/reset")))
    assert (r.success, r.reason) == (False, "connect")
    assert targets.hits["/reset"] == 1  # a dropped connection is reported, not retried


async def test_reset_during_the_body(targets):
    r = await probe(svc(targets.url("/reset-mid-body")))
    assert (r.reason, r.http_status) == ("connect", 200)


async def test_corrupt_gzip_is_bad_body(targets):
    r = await probe(svc(targets.url("/bad-gzip")))
    assert (r.reason, r.message, r.http_status) == ("bad_body", "body cannot be decompressed", 200)


async def test_non_http_server(targets):
    r = await probe(svc(f"http://{targets.junk_tcp_address}/health"))
    assert (r.reason, r.message) == ("other", "invalid HTTP response: Bad status line")


async def test_server_closing_at_once(targets):
    r = await probe(svc(f"http://{targets.tcp_address}/health"))
    assert r.reason == "connect" and r.message.startswith("connection dropped")


async def test_silent_server_times_out(targets):
    r = await probe(svc(f"http://{targets.silent_tcp_address}/health"), limit=0.3)
    assert r.reason == "timeout"


async def test_refused_port():
    port = free_port()
    r = await probe(svc(f"http://127.0.0.1:{port}/health"))
    assert (r.reason, r.http_status) == ("connect", None)
    assert r.message.startswith(f"127.0.0.1:{port}: ")


async def test_dns_failure():
    r = await probe(svc("http://no-such-host.invalid/health"))
    assert r.reason == "dns"
    assert r.message.startswith("no-such-host.invalid:80: cannot resolve")


async def test_messages_never_carry_the_url(targets):
    port = free_port()
    r = await probe(svc(f"http://user:s3cret@127.0.0.1:{port}/health?token=s3cret"))
    assert r.reason == "connect" and "s3cret" not in r.message


async def test_redirect_not_followed_unless_configured(targets):
    r = await probe(svc(targets.url("/redirect?to=/healthy")))
    assert (r.reason, r.http_status) == ("status", 302)
    assert targets.hits["/healthy"] == 0
    r = await probe(svc(targets.url("/redirect?to=/healthy"), follow_redirects=True))
    assert (r.success, r.http_status, r.reported) == (True, 200, "healthy")
    assert r.extra == {"redirects": 1}
    assert targets.hits["/healthy"] == 1


async def test_redirect_limit(targets):
    r = await probe(svc(targets.url("/redirect-chain/10"), follow_redirects=True))
    assert r.success and r.extra == {"redirects": 10}
    r = await probe(svc(targets.url("/redirect-chain/11"), follow_redirects=True))
    assert (r.reason, r.http_status, r.message) == ("status", 302, "more than 10 redirects")


async def test_redirect_loop(targets):
    r = await probe(svc(targets.url("/redirect-loop"), follow_redirects=True))
    assert (r.reason, r.http_status) == ("status", 302)
    assert targets.hits["/redirect-loop"] == 11  # the first request and 10 redirects


async def test_flapping_target(targets):
    results = [await probe(svc(targets.url("/flap"))) for _ in range(4)]
    assert [r.success for r in results] == [True, False, True, False]
    assert [r.http_status for r in results] == [200, 503, 200, 503]


async def test_toggled_target(targets):
    assert (await probe(svc(targets.url("/toggle")))).success
    targets.toggle = False
    r = await probe(svc(targets.url("/toggle")))
    assert (r.reason, r.reported) == ("status", "unhealthy")


async def test_slow_target_duration_covers_the_delay(targets):
    r = await probe(svc(targets.url("/slow?ms=300"), degraded_latency=0.1))
    assert r.success and r.duration_s >= 0.3


async def test_fresh_connection_per_probe(targets):
    for _ in range(3):
        r = await probe(svc(targets.url("/healthy")))
        assert r.success and r.phases["connect"] > 0 and r.phases["processing"] > 0
    assert len(set(targets.peers)) == 3


async def test_prober_alone_honours_its_timeout(targets):
    # Without run_probe around it, the prober's own client timeout still ends the probe.
    r = await probe_http(svc(targets.url("/hang")), ProbeContext(timeout=0.3))
    assert r.reason == "timeout"


async def test_cancellation_is_not_swallowed(targets):
    task = asyncio.create_task(probe(svc(targets.url("/hang"))))
    await targets.wait_until(lambda: targets.hits["/hang"] == 1)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
