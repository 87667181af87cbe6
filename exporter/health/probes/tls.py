"""TLS for probes: client contexts cached per TLS configuration, certificate expiry."""

from __future__ import annotations

import functools
import os
import ssl
from datetime import UTC, datetime

from ...config.model import TLSConfig


@functools.lru_cache(maxsize=1024)
def _build(tls: TLSConfig, _ca_stamp: tuple[int, int] | None) -> ssl.SSLContext:
    if not tls.verify:
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        return ctx
    # With a ca_file only that file is trusted, as blackbox_exporter does.
    return ssl.create_default_context(cafile=tls.ca_file)


def client_context(tls: TLSConfig) -> ssl.SSLContext:
    """The SSLContext for `tls`, built once and rebuilt when its ca_file changes on disk."""
    stamp = None
    if tls.verify and tls.ca_file:
        st = os.stat(tls.ca_file)
        stamp = (st.st_mtime_ns, st.st_size)
    return _build(tls, stamp)


@functools.lru_cache(maxsize=64)
def _read_ca(path: str, _stamp: tuple[int, int]) -> bytes:
    with open(path, "rb") as handle:
        return handle.read()


def ca_bytes(tls: TLSConfig) -> bytes | None:
    """The PEM bytes of `tls.ca_file` (None without one), read again when it changes on disk."""
    if not tls.ca_file:
        return None
    st = os.stat(tls.ca_file)
    return _read_ca(tls.ca_file, (st.st_mtime_ns, st.st_size))


def _read_tlv(der: bytes, pos: int) -> tuple[int, int, int]:
    """(tag, start of content, end of content) of the DER element at `pos`."""
    tag = der[pos]
    length = der[pos + 1]
    pos += 2
    if length & 0x80:
        count = length & 0x7F
        if count == 0 or count > 4:
            raise ValueError("unsupported DER length")
        length = int.from_bytes(der[pos : pos + count], "big")
        pos += count
    end = pos + length
    if end > len(der):
        raise ValueError("truncated DER")
    return tag, pos, end


def _asn1_time(tag: int, raw: bytes) -> float:
    text = raw.decode("ascii")
    if tag == 0x17:  # UTCTime YYMMDDHHMMSSZ; RFC 5280: YY < 50 is 20YY
        year = int(text[:2])
        text = ("20" if year < 50 else "19") + text
    elif tag != 0x18:  # GeneralizedTime YYYYMMDDHHMMSSZ
        raise ValueError("not an ASN.1 time")
    when = datetime.strptime(text[:14], "%Y%m%d%H%M%S").replace(tzinfo=UTC)
    return when.timestamp()


def cert_not_after(der: bytes) -> float:
    """notAfter of a DER certificate, unix seconds (works whether or not it was verified)."""
    _, cert, _ = _read_tlv(der, 0)  # Certificate ::= SEQUENCE
    _, pos, _ = _read_tlv(der, cert)  # tbsCertificate ::= SEQUENCE
    tag, _, end = _read_tlv(der, pos)
    if tag == 0xA0:  # [0] EXPLICIT version
        pos = end
    for _ in range(3):  # serialNumber, signature, issuer
        _, _, pos = _read_tlv(der, pos)
    _, validity, _ = _read_tlv(der, pos)
    _, _, after = _read_tlv(der, validity)  # skip notBefore
    tag, start, end = _read_tlv(der, after)
    return _asn1_time(tag, der[start:end])


def peer_cert_expiry(ssl_object: ssl.SSLObject | ssl.SSLSocket | None) -> float | None:
    """notAfter of the peer's leaf certificate (Python 3.11 exposes the leaf alone)."""
    if ssl_object is None:
        return None
    der = ssl_object.getpeercert(binary_form=True)
    if not der:
        return None
    try:
        return cert_not_after(der)
    except (ValueError, IndexError, UnicodeDecodeError):
        return None
