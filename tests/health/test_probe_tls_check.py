"""The tls check type against the real trustme-certified targets."""

from exporter.config.model import Condition, ServiceConfig, TLSConfig
from exporter.health.probes import ProbeContext, run_probe

DAY = 86400.0


def svc(port, host="localhost", **kw):
    return ServiceConfig(name="fix-gateway-tls", type="tls", address=f"{host}:{port}", **kw)


async def probe(service, allowed=(), trace=None):
    return await run_probe(service, ProbeContext(timeout=3.0, allowed_targets=allowed, trace=trace))


async def test_trusted_certificate_and_its_expiry(targets):
    cond = Condition("[CERTIFICATE_EXPIRATION] > 14d", "CERTIFICATE_EXPIRATION", (), ">", 14 * DAY)
    r = await probe(svc(targets.tls_port, tls=TLSConfig(ca_file=targets.ca_file), conditions=(cond,)))
    assert (r.success, r.reason) == (True, None), r.message
    assert r.tls_expiry == targets.tls_not_after
    assert set(r.phases) == {"resolve", "connect", "tls"}
    assert r.facts["tls_version"].startswith("TLS 1.")


async def test_expiry_too_close_is_condition(targets):
    cond = Condition("[CERTIFICATE_EXPIRATION] > 100d", "CERTIFICATE_EXPIRATION", (), ">", 100 * DAY)
    r = await probe(svc(targets.tls_port, tls=TLSConfig(ca_file=targets.ca_file), conditions=(cond,)))
    assert (r.success, r.reason) == (False, "condition")
    assert r.message.startswith("[CERTIFICATE_EXPIRATION] > 100d")
    assert r.tls_expiry == targets.tls_not_after


async def test_untrusted_is_tls(targets):
    r = await probe(svc(targets.tls_port))
    assert r.reason == "tls"
    assert "certificate not accepted: unable to get local issuer certificate" in r.message


async def test_expired_is_tls(targets):
    r = await probe(svc(targets.expired_tls_port, tls=TLSConfig(ca_file=targets.ca_file)))
    assert r.reason == "tls" and "certificate has expired" in r.message


async def test_wrong_host_is_tls(targets):
    r = await probe(svc(targets.wrong_host_tls_port, tls=TLSConfig(ca_file=targets.ca_file)))
    assert r.reason == "tls" and "Hostname mismatch" in r.message


async def test_server_name_decides_verification(targets):
    r = await probe(svc(targets.tls_port, host="127.0.0.1",
                        tls=TLSConfig(ca_file=targets.ca_file, server_name="localhost")))
    assert r.success


async def test_not_tls_at_all_is_tls(targets):
    r = await probe(svc(targets.port, host="127.0.0.1", tls=TLSConfig(ca_file=targets.ca_file)))
    assert r.reason == "tls" and "TLS handshake failed" in r.message


async def test_outside_allowed_targets_no_connection(targets):
    r = await probe(svc(targets.tcp_port, host="127.0.0.1"), allowed=("10.0.0.0/8",))
    assert r.reason == "other" and "not in allowed_targets" in r.message
    assert targets.tcp_accepted == 0
