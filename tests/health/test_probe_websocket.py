"""The WebSocket prober against real aiohttp WebSocket servers, plain and over TLS."""

from exporter.config.model import ServiceConfig, TLSConfig
from exporter.health.probes import ProbeContext, run_probe


def svc(url, **kw):
    return ServiceConfig(name="websocket", type="websocket", url=url, **kw)


async def probe(service, timeout=2.0, allowed=(), trace=None):
    return await run_probe(service, ProbeContext(timeout=timeout, allowed_targets=allowed,
                                                 trace=trace))


async def test_handshake_alone_is_success(ws_targets):
    r = await probe(svc(ws_targets.url("/ticks")))
    assert (r.success, r.reason, r.http_status) == (True, None, 101)
    assert set(r.phases) == {"resolve", "connect", "handshake"}


async def test_first_tick_matches_expect(ws_targets):
    r = await probe(svc(ws_targets.url("/ticks"), expect='"type": "tick"'))
    assert r.success, r.message
    assert set(r.phases) == {"resolve", "connect", "handshake", "first_message"}


async def test_ping_is_answered_with_pong(ws_targets):
    r = await probe(svc(ws_targets.url("/ticks"), send='{"op": "ping"}', expect='"pong"'))
    assert r.success, r.message


async def test_headers_are_sent(ws_targets):
    r = await probe(svc(ws_targets.url("/ticks"), headers=(("Authorization", "Bearer s3cret"),)))
    assert r.success and ws_targets.seen_auth == ["Bearer s3cret"]


async def test_no_matching_message_is_expect(ws_targets):
    r = await probe(svc(ws_targets.url("/quiet"), expect="tick"), timeout=0.5)
    assert (r.success, r.reason) == (False, "expect")
    assert "no message matched expect" in r.message


async def test_close_before_a_match_is_expect(ws_targets):
    r = await probe(svc(ws_targets.url("/close"), expect="tick"))
    assert (r.success, r.reason) == (False, "expect")
    assert "closed (code 1001)" in r.message


async def test_plain_200_is_handshake(ws_targets):
    r = await probe(svc(ws_targets.url("/plain")))
    assert (r.success, r.reason, r.http_status) == (False, "handshake", 200)
    assert r.message == "HTTP 200 instead of 101 Switching Protocols"


async def test_wrong_accept_key_is_handshake(ws_targets):
    r = await probe(svc(ws_targets.url("/badkey")))
    assert (r.success, r.reason) == (False, "handshake")
    assert "Sec-WebSocket-Accept" in r.message


async def test_wss_trusted(ws_targets):
    r = await probe(svc(ws_targets.wss("/ticks"), expect="tick", tls=TLSConfig(ca_file=ws_targets.ca_file)))
    assert r.success, r.message
    assert r.tls_expiry == ws_targets.not_after
    assert {"tls", "handshake", "first_message"} <= set(r.phases)


async def test_wss_untrusted(ws_targets):
    r = await probe(svc(ws_targets.wss("/ticks")))
    assert r.reason == "tls" and "certificate not accepted: unable to get local issuer" in r.message


async def test_wss_expired(ws_targets):
    r = await probe(svc(ws_targets.wss("/ticks", ws_targets.expired_port),
                        tls=TLSConfig(ca_file=ws_targets.ca_file)))
    assert r.reason == "tls" and "expired" in r.message


async def test_wss_wrong_host(ws_targets):
    r = await probe(svc(ws_targets.wss("/ticks", ws_targets.wrong_host_port),
                        tls=TLSConfig(ca_file=ws_targets.ca_file)))
    assert r.reason == "tls" and "localhost" in r.message


async def test_wss_without_verification_still_reads_expiry(ws_targets):
    r = await probe(svc(ws_targets.wss("/ticks", ws_targets.expired_port),
                        tls=TLSConfig(verify=False)))
    assert r.success and r.tls_expiry is not None and r.tls_expiry < ws_targets.not_after


async def test_target_outside_allowed_targets_gets_no_connection(ws_targets):
    r = await probe(svc(ws_targets.url("/ticks")), allowed=("10.0.0.0/8",))
    assert r.reason == "other" and "not in allowed_targets" in r.message
    assert ws_targets.upgrades == 0 and "connect" not in r.phases


async def test_trace_says_each_step_and_no_secret(ws_targets):
    lines = []
    r = await probe(svc(ws_targets.url("/ticks"), expect="tick",
                        headers=(("Authorization", "Bearer s3cret"),)), trace=lines.append)
    assert r.success
    text = "\n".join(lines)
    for word in ("resolving", "connected", "upgrade answer: HTTP 101", "matched expect", "success"):
        assert word in text
    assert "s3cret" not in text and "Authorization: ***" in text
