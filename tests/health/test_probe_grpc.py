"""The gRPC prober against a real grpcio server with the standard health service."""

from exporter.config.model import ServiceConfig, TLSConfig
from exporter.health.probes import ProbeContext, run_probe
from tests.support.grpc_server import NOT_SERVING, SERVING, grpc_target, grpc_tls


def svc(address, **kw):
    return ServiceConfig(name="pricing-grpc", type="grpc", address=address, **kw)


async def probe(service, timeout=3.0, allowed=(), trace=None):
    return await run_probe(service, ProbeContext(timeout=timeout, allowed_targets=allowed, trace=trace))


async def test_serving_then_not_serving_then_serving_again():
    async with grpc_target() as server:
        r = await probe(svc(server.address))
        assert (r.success, r.reason) == (True, None), r.message
        assert set(r.phases) == {"resolve", "connect", "check"}
        assert r.facts["serving_status"] == "SERVING" and r.facts["status_code"] == 0
        await server.set("", NOT_SERVING)
        r = await probe(svc(server.address))
        assert (r.success, r.reason, r.message) == (False, "status", "serving status NOT_SERVING")
        await server.set("", SERVING)
        assert (await probe(svc(server.address))).success


async def test_named_service():
    async with grpc_target() as server:
        assert (await probe(svc(server.address, grpc_service="pricing.Quotes"))).success
        await server.set("pricing.Quotes", NOT_SERVING)
        r = await probe(svc(server.address, grpc_service="pricing.Quotes"))
        assert r.reason == "status"


async def test_unknown_service_name_is_status():
    async with grpc_target() as server:
        r = await probe(svc(server.address, grpc_service="no.Such"))
        assert (r.success, r.reason) == (False, "status")
        assert "SERVICE_UNKNOWN" in r.message and r.facts["serving_status"] == "SERVICE_UNKNOWN"


async def test_a_port_that_is_not_grpc_is_connect(targets):
    r = await probe(svc(targets.junk_tcp_address), timeout=2.0)
    assert (r.success, r.reason) == (False, "connect"), r.message


async def test_closed_port_is_connect():
    from tests.support.tools import free_port

    r = await probe(svc(f"127.0.0.1:{free_port()}"), timeout=2.0)
    assert r.reason == "connect"


async def test_tls_channel_and_certificate_expiry():
    ca_file, _, _ = grpc_tls()
    async with grpc_target(tls=True) as server:
        r = await probe(svc(f"localhost:{server.port}", tls=TLSConfig(enabled=True, ca_file=ca_file)))
        assert r.success, r.message
        assert r.tls_expiry is not None and {"tls", "check"} <= set(r.phases)
        assert r.facts["ssl"] is True
        untrusted = await probe(svc(f"localhost:{server.port}", tls=TLSConfig(enabled=True)))
        assert untrusted.reason == "tls" and "certificate not accepted" in untrusted.message


async def test_outside_allowed_targets_no_connection():
    async with grpc_target() as server:
        r = await probe(svc(server.address), allowed=("10.0.0.0/8",))
        assert r.reason == "other" and "not in allowed_targets" in r.message
        assert "connect" not in r.phases


async def test_trace_names_the_steps():
    lines = []
    async with grpc_target() as server:
        r = await probe(svc(server.address), trace=lines.append)
    text = "\n".join(lines)
    assert r.success
    for step in ("resolving 127.0.0.1", "opening a gRPC channel", "Health/Check", "serving status SERVING"):
        assert step in text, text
