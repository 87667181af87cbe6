"""The web configuration is strict: every bad file is refused with file, line and field,
and everything Python's ssl cannot honour is refused too."""

from __future__ import annotations

import pytest

from exporter.config.errors import ConfigError
from exporter.security.tls import build_server_context
from exporter.security.web import WebSecurity
from exporter.security.webconfig import load_web_config

from .conftest import HASH


def _write(tmp_path, text: str, tls) -> str:
    text = (text.replace("CERT", str(tls.cert_file)).replace("KEY", str(tls.key_file))
                .replace("CLIENTCA", str(tls.client_ca_file)))
    path = tmp_path / "web.yml"
    path.write_text(text)
    return str(path)


def test_full_example_parses(tmp_path, tls_files):
    path = _write(tmp_path, f"""
tls_server_config:
  cert_file: CERT
  key_file: KEY
  client_auth_type: RequireAndVerifyClientCert
  client_ca_file: CLIENTCA
  client_allowed_sans: [desk-client.example]
  min_version: TLS12
  max_version: TLS13
  cipher_suites: [TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256, TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384, TLS_AES_128_GCM_SHA256]
  prefer_server_cipher_suites: true
  curve_preferences: [CurveP256]
http_server_config:
  http2: false
  headers:
    X-Frame-Options: deny
    X-Content-Type-Options: nosniff
    Strict-Transport-Security: max-age=31536000
    Content-Security-Policy: ""
basic_auth_users:
  prometheus: {HASH}
rate_limit:
  interval: 100ms
  burst: 20
""", tls_files)
    cfg = load_web_config(path)
    assert cfg.tls.client_allowed_sans == ("desk-client.example",)
    assert cfg.headers == (("X-Frame-Options", "deny"), ("X-Content-Type-Options", "nosniff"),
                           ("Strict-Transport-Security", "max-age=31536000"))  # blank means unset
    assert [u for u, _ in cfg.users] == ["prometheus"]
    assert cfg.rate_limit.interval == 0.1 and cfg.rate_limit.burst == 20
    ctx = build_server_context(cfg.tls, path)
    names = {c["name"] for c in ctx.get_ciphers() if c["protocol"] == "TLSv1.2"}
    assert names == {"ECDHE-ECDSA-AES128-GCM-SHA256", "ECDHE-RSA-AES256-GCM-SHA384"}
    assert HASH not in repr(cfg)


def test_empty_file_is_plain_http(tmp_path, tls_files):
    cfg = load_web_config(_write(tmp_path, "", tls_files))
    assert cfg.tls is None and cfg.users == () and cfg.rate_limit is None


def test_relative_paths_start_at_the_files_folder(tmp_path, tls_files):
    path = tmp_path / "web.yml"
    path.write_text("tls_server_config:\n  cert_file: tls/server.crt\n  key_file: tls/server.key\n")
    assert load_web_config(str(path)).tls.cert_file == str(tls_files.cert_file)


BAD = [
    ("unknown top-level key", "tls_server_cofig: {}\n",
     ":1: field 'tls_server_cofig': unknown field (did you mean 'tls_server_config'?)"),
    ("unknown tls key", "tls_server_config:\n  cert_file: CERT\n  key_file: KEY\n  cert_flie: x\n",
     ":4: field 'tls_server_config.cert_flie': unknown field (did you mean 'cert_file'?)"),
    ("empty tls section", "tls_server_config:\n", "field 'tls_server_config': is empty"),
    ("missing key", "tls_server_config:\n  cert_file: CERT\n", "key_file (or key) is required"),
    ("both inline and file", "tls_server_config:\n  cert_file: CERT\n  key_file: KEY\n  cert: '-----BEGIN CERTIFICATE-----'\n",
     "field 'tls_server_config.cert': give cert or cert_file, not both"),
    ("unreadable cert", "tls_server_config:\n  cert_file: /nonexistent/server.crt\n  key_file: KEY\n",
     ":2: field 'tls_server_config.cert_file': cannot read file '/nonexistent/server.crt': No such file or directory"),
    ("TLS 1.0", "tls_server_config:\n  cert_file: CERT\n  key_file: KEY\n  min_version: TLS10\n",
     "field 'tls_server_config.min_version': TLS10 is refused (deprecated by RFC 8996)"),
    ("unknown version", "tls_server_config:\n  cert_file: CERT\n  key_file: KEY\n  max_version: TLS14\n",
     "unknown TLS version 'TLS14'"),
    ("min above max", "tls_server_config:\n  cert_file: CERT\n  key_file: KEY\n  min_version: TLS13\n  max_version: TLS12\n",
     "field 'tls_server_config.min_version': TLS13 is above max_version TLS12"),
    ("unverified client certs", "tls_server_config:\n  cert_file: CERT\n  key_file: KEY\n  client_auth_type: RequireAnyClientCert\n  client_ca_file: CLIENTCA\n",
     "RequireAnyClientCert accepts client certificates without verifying them, which Python's ssl cannot do"),
    ("unknown client auth", "tls_server_config:\n  cert_file: CERT\n  key_file: KEY\n  client_auth_type: Maybe\n",
     "unknown value 'Maybe'"),
    ("verify without CA", "tls_server_config:\n  cert_file: CERT\n  key_file: KEY\n  client_auth_type: RequireAndVerifyClientCert\n",
     "RequireAndVerifyClientCert needs client_ca_file (or client_ca)"),
    ("CA without policy", "tls_server_config:\n  cert_file: CERT\n  key_file: KEY\n  client_ca_file: CLIENTCA\n",
     "client CAs are configured without a client_auth_type"),
    ("SANs without verification", "tls_server_config:\n  cert_file: CERT\n  key_file: KEY\n  client_auth_type: VerifyClientCertIfGiven\n  client_ca_file: CLIENTCA\n  client_allowed_sans: [a]\n",
     "field 'tls_server_config.client_allowed_sans': needs client_auth_type: RequireAndVerifyClientCert"),
    ("invented cipher", "tls_server_config:\n  cert_file: CERT\n  key_file: KEY\n  cipher_suites: [TLS_MADE_UP_SHA1]\n",
     "field 'tls_server_config.cipher_suites[0]': unknown or insecure cipher suite 'TLS_MADE_UP_SHA1'"),
    ("RC4", "tls_server_config:\n  cert_file: CERT\n  key_file: KEY\n  cipher_suites: [TLS_RSA_WITH_RC4_128_SHA]\n",
     "unknown or insecure cipher suite 'TLS_RSA_WITH_RC4_128_SHA'"),
    ("two curves", "tls_server_config:\n  cert_file: CERT\n  key_file: KEY\n  curve_preferences: [CurveP256, X25519]\n",
     "Python's ssl can pin one curve, not an order of several; list exactly one"),
    ("http2 on", "http_server_config:\n  http2: true\n",
     "field 'http_server_config.http2': HTTP/2 is not available"),
    ("header outside the allowed set", "http_server_config:\n  headers:\n    Server: nginx\n",
     "field 'http_server_config.headers.Server': unknown field"),
    ("bad X-Frame-Options", "http_server_config:\n  headers:\n    X-Frame-Options: allow-from\n",
     "invalid value 'allow-from'; expected deny or sameorigin"),
    ("header injection", "http_server_config:\n  headers:\n    Content-Security-Policy: \"a\\r\\nSet-Cookie: x\"\n",
     "a header value is one line of printable ASCII"),
    ("password instead of hash", "basic_auth_users:\n  alice: hunter2-plaintext\n",
     ":2: field 'basic_auth_users.alice': expected a bcrypt hash"),
    ("colon in user name", f"basic_auth_users:\n  'a:b': {HASH}\n",
     "a user name is 1 to 256 characters, without ':'"),
    ("user named by a boolean", f"basic_auth_users:\n  no: {HASH}\n",
     "keys must be strings, got boolean no"),
    ("duplicate user", f"basic_auth_users:\n  a: {HASH}\n  a: {HASH}\n",
     ":3: field 'basic_auth_users.a': duplicate key (first at line 2)"),
    ("rate without interval", "rate_limit:\n  burst: 3\n", "interval is required"),
    ("rate bad interval", "rate_limit:\n  interval: fast\n  burst: 3\n",
     "field 'rate_limit.interval': invalid duration 'fast'"),
    ("rate without burst", "rate_limit:\n  interval: 1s\n", "burst is required"),
    ("rate zero burst", "rate_limit:\n  interval: 1s\n  burst: 0\n",
     "field 'rate_limit.burst': must be between 1 and 1000000, got 0"),
    ("alias bomb", "a: &x [1]\n", "anchors are not allowed"),
    ("tag", "basic_auth_users: !!python/object:os.system {}\n", "tags are not allowed"),
]


@pytest.mark.parametrize(("text", "expected"), [c[1:] for c in BAD], ids=[c[0] for c in BAD])
def test_bad_web_config_is_refused(tmp_path, tls_files, text, expected):
    path = _write(tmp_path, text, tls_files)
    with pytest.raises(ConfigError) as caught:
        WebSecurity(path)
    message = str(caught.value)
    assert message.startswith(path), message
    assert expected in message, message
    assert "hunter2" not in message


def test_mismatched_key_is_refused_naming_the_field(tmp_path, tls_files):
    other = tls_files.ca.issue_cert("localhost")
    other_key = tmp_path / "other.key"
    other.private_key_pem.write_to_path(str(other_key))
    path = tmp_path / "web.yml"
    path.write_text(f"tls_server_config:\n  cert_file: {tls_files.cert_file}\n  key_file: {other_key}\n")
    with pytest.raises(ConfigError, match=r"field 'tls_server_config.cert_file': certificate and key are not a usable pair: key values mismatch"):
        WebSecurity(str(path))


def test_garbage_pem_is_refused(tmp_path, tls_files):
    junk = tmp_path / "junk.crt"
    junk.write_text("-----BEGIN CERTIFICATE-----\nnot base64 at all\n-----END CERTIFICATE-----\n")
    path = tmp_path / "web.yml"
    path.write_text(f"tls_server_config:\n  cert_file: {junk}\n  key_file: {tls_files.key_file}\n")
    with pytest.raises(ConfigError, match=r"tls_server_config.cert_file': certificate and key are not a usable pair"):
        WebSecurity(str(path))


def test_inline_certificate_and_key(tmp_path, tls_files):
    cert = tls_files.cert_file.read_text()
    key = tls_files.key_file.read_text()
    indent = lambda pem: "\n".join("    " + line for line in pem.strip().splitlines())  # noqa: E731
    path = tmp_path / "web.yml"
    path.write_text(f"tls_server_config:\n  cert: |\n{indent(cert)}\n  key: |\n{indent(key)}\n")
    security = WebSecurity(str(path))
    assert security.ssl_context is not None
    assert "PRIVATE KEY" not in repr(security.config) and "PRIVATE KEY" not in repr(security.config.tls)
