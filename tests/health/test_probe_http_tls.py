"""HTTPS probes against real TLS targets (trustme CA): verification, SNI, expiry, phases."""

import datetime as dt
import os
import time

import trustme
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from exporter.config.model import Condition, ServiceConfig, TLSConfig
from exporter.health.probes import ProbeContext, run_probe
from exporter.health.probes.tls import cert_not_after, client_context
from tests.support.targets import tls_material


def svc(url, **kw):
    return ServiceConfig(name="secure", type="http", url=url, **kw)


async def probe(service):
    return await run_probe(service, ProbeContext(timeout=5.0))


async def test_trusted_certificate(targets):
    r = await probe(svc(targets.tls_url("/healthy"), tls=TLSConfig(ca_file=targets.ca_file)))
    assert (r.success, r.reported) == (True, "healthy")
    assert r.tls_expiry == targets.tls_not_after
    # TLS is timed on its own, not inside connect.
    assert r.phases["tls"] > 0 and r.phases["connect"] > 0


async def test_ip_address_url(targets):
    r = await probe(svc(targets.tls_url("/healthy", host="127.0.0.1"), tls=TLSConfig(ca_file=targets.ca_file)))
    assert r.success and r.phases["resolve"] == 0.0  # an IP needs no lookup


async def test_certificate_expiration_condition(targets):
    days = 86400.0
    conds = (
        Condition("[CERTIFICATE_EXPIRATION] > 30d", "CERTIFICATE_EXPIRATION", (), ">", 30 * days),
        Condition("[CERTIFICATE_EXPIRATION] > 100d", "CERTIFICATE_EXPIRATION", (), ">", 100 * days),
    )
    r = await probe(svc(targets.tls_url("/healthy"), tls=TLSConfig(ca_file=targets.ca_file), conditions=conds))
    assert r.reason == "condition"
    assert [o.success for o in r.conditions] == [True, False]


async def test_untrusted_certificate(targets):
    r = await probe(svc(targets.tls_url("/healthy")))
    assert r.reason == "tls" and "certificate verify failed" in r.message


async def test_expired_certificate(targets):
    r = await probe(svc(targets.expired_tls_url("/healthy"), tls=TLSConfig(ca_file=targets.ca_file)))
    assert r.reason == "tls" and "expired" in r.message


async def test_wrong_host_certificate(targets):
    r = await probe(svc(targets.wrong_host_tls_url("/healthy"), tls=TLSConfig(ca_file=targets.ca_file)))
    assert r.reason == "tls" and "mismatch" in r.message.lower()


async def test_server_name_overrides_the_checked_name(targets):
    tls = TLSConfig(ca_file=targets.ca_file, server_name="wrong.example")
    r = await probe(svc(targets.wrong_host_tls_url("/healthy"), tls=tls))
    assert r.success


async def test_verify_off_accepts_an_expired_certificate_and_still_reads_its_expiry(targets):
    r = await probe(svc(targets.expired_tls_url("/healthy"), tls=TLSConfig(verify=False)))
    assert r.success
    assert r.tls_expiry is not None and r.tls_expiry < time.time()


async def test_missing_ca_file(targets, tmp_path):
    r = await probe(svc(targets.tls_url("/healthy"), tls=TLSConfig(ca_file=str(tmp_path / "nope.pem"))))
    assert r.reason == "tls" and r.message.startswith("cannot read ca_file")


async def test_redirect_from_http_to_https(targets):
    to = targets.tls_url("/healthy")
    r = await probe(svc(targets.url(f"/redirect?to={to}"), follow_redirects=True,
                        tls=TLSConfig(ca_file=targets.ca_file)))
    assert r.success and r.tls_expiry == targets.tls_not_after and r.phases["tls"] > 0


def test_context_is_cached_and_rebuilt_when_the_ca_file_changes(tmp_path):
    ca = tmp_path / "ca.pem"
    ca.write_bytes(open(tls_material().ca_file, "rb").read())
    tls = TLSConfig(ca_file=str(ca))
    first = client_context(tls)
    assert client_context(TLSConfig(ca_file=str(ca))) is first
    stat = ca.stat()
    os.utime(ca, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))
    assert client_context(tls) is not first
    assert client_context(TLSConfig(verify=False)).verify_mode.name == "CERT_NONE"


def test_cert_not_after_matches_cryptography():
    # trustme's default notAfter (year 3000) is a GeneralizedTime; 2030 is a UTCTime.
    ca = trustme.CA()
    certs = [ca.issue_cert("a.example"),
             ca.issue_cert("b.example", not_after=dt.datetime(2030, 5, 6, 7, 8, 9, tzinfo=dt.UTC))]
    pems = [c.cert_chain_pems[0].bytes() for c in certs] + [ca.cert_pem.bytes()]
    for pem in pems:
        parsed = x509.load_pem_x509_certificate(pem)
        assert cert_not_after(parsed.public_bytes(Encoding.DER)) == parsed.not_valid_after_utc.timestamp()
    assert cert_not_after(x509.load_pem_x509_certificate(pems[1]).public_bytes(Encoding.DER)) == (
        dt.datetime(2030, 5, 6, 7, 8, 9, tzinfo=dt.UTC).timestamp())
