"""Each bad services.yaml in cases/ fails with exactly the message in this table."""

from __future__ import annotations

from pathlib import Path

import pytest

from exporter.config import ConfigError, load_config

CASES_DIR = Path(__file__).parent / "cases"

# file -> the error after "<path>", i.e. ":line: service ...: field ...: message".
EXPECTED = {
    'alias-merge.yaml': ':4: aliases are not allowed (*base)',
    'allowed-targets-bad.yaml': ":2: field 'allowed_targets[1]': invalid target 'not a target': expected a CIDR (10.0.0.0/8), an address, or host:port",
    'allowed-targets-empty.yaml': ":2: field 'allowed_targets': an empty list allows nothing; remove it to allow every target",
    'allowed-targets-host-bits.yaml': ":2: field 'allowed_targets[0]': invalid network '10.0.0.1/8': 10.0.0.1/8 has host bits set",
    'anchor-bomb.yaml': ':1: anchors are not allowed (&a)',
    'body-format-head.yaml': ":5: service 'api': field 'body_format': ietf needs a body; HEAD gets none",
    'body-format-unknown.yaml': ":4: service 'api': field 'body_format': invalid value 'xml': expected one of auto, seed, ietf, spring, text, none",
    'comments-only.yaml': ':1: the file is empty; write services: [] for no services',
    'condition-bad-path.yaml': ":4: service 'api': field 'conditions[0]': cannot read the path '.a..b' at '..b': write .field or [index]",
    'condition-bare-response-time.yaml': ":4: service 'api': field 'conditions[0]': [RESPONSE_TIME] compares with a duration like 800ms, got number",
    'condition-body-on-tcp.yaml': ":5: service 'ws': field 'conditions[0]': [BODY] applies to http services only",
    'condition-head-body.yaml': ":5: service 'api': field 'conditions[0]': [BODY] needs a body; HEAD gets none",
    'condition-no-operator.yaml': ":4: service 'api': field 'conditions[0]': expected '[SUBJECT] OPERATOR VALUE', e.g. [STATUS] == 200",
    'condition-not-string.yaml': ':5: service \'api\': field \'conditions[0]\': expected a quoted string like "[STATUS] == 200", got a mapping',
    'condition-order-string.yaml': ":4: service 'api': field 'conditions[0]': operator > compares numbers or durations, not string",
    'condition-single-quotes.yaml': ':4: service \'api\': field \'conditions[0]\': strings take double quotes: "text"',
    'condition-status-path.yaml': ":4: service 'api': field 'conditions[0]': only [BODY] takes a path, not [STATUS]",
    'condition-unknown-subject.yaml': ":6: service 'api': field 'conditions[1]': unknown subject [LATENCY]; expected one of [STATUS], [RESPONSE_TIME], [BODY], [CERTIFICATE_EXPIRATION]",
    'control-char.yaml': ':2: unacceptable character U+0007',
    'critical-yes.yaml': ":4: service 'api': field 'critical': expected true or false, got yes",
    'deep-nesting.yaml': ':1: nested deeper than 32 levels',
    'defaults-bad-duration.yaml': ":2: field 'defaults.degraded_latency': expected a duration like 30s, got number 1000",
    'empty.yaml': ':1: the file is empty; write services: [] for no services',
    'env-malformed.yaml': ":3: service 'api': field 'url': malformed reference '${1TRADING_API_URL}': write ${NAME} or ${NAME:-default}",
    'env-unclosed.yaml': ":3: service 'api': field 'url': unclosed '${': write ${NAME} or ${NAME:-default}",
    'env-unset.yaml': ":4: service 'api': field 'headers.Authorization': environment variable TRADING_API_TOKEN is not set (write ${TRADING_API_TOKEN:-default} for a default)",
    'expect-status-class.yaml': ":4: service 'api': field 'expect_status[0]': expected a status code (100-599) or class (1xx-5xx), got string '6xx'",
    'expect-status-empty.yaml': ":4: service 'api': field 'expect_status': must not be empty (the default is [2xx])",
    'expect-status-quoted.yaml': ":4: service 'api': field 'expect_status[0]': expected a status code (100-599) or class (1xx-5xx), got string '200'",
    'expect-status-range.yaml': ":4: service 'api': field 'expect_status[1]': must be between 100 and 599, got 600",
    'expect-status-scalar.yaml': ":4: service 'api': field 'expect_status': expected a list like [200] or [2xx], got number 200",
    'follow-redirects-string.yaml': ":4: service 'api': field 'follow_redirects': expected true or false, got string 'true'; remove the quotes",
    'headers-bad-name.yaml': ":4: service 'api': field 'headers.Bad Header': invalid header name",
    'headers-list.yaml': ":4: service 'api': field 'headers': expected a mapping, got a list",
    'headers-number-value.yaml': ":4: service 'api': field 'headers.X-Api-Key': expected a string value (redacted)",
    'http-missing-url.yaml': ":2: service 'api': field 'url': missing url: http:// or https://",
    'interval-bad-unit.yaml': ":4: service 'api': field 'interval': invalid duration '30sec': expected a number and a unit (ms, s, m, h, d), e.g. 250ms, 30s, 2m, 1h, 30d or 1m30s",
    'interval-bare-number.yaml': ":4: service 'api': field 'interval': expected a duration like 30s, got number 30",
    'interval-too-long.yaml': ":4: service 'api': field 'interval': must be more than 0s and at most 1d, got '2d'",
    'invalid-utf8.yaml': ':3: not valid UTF-8 (byte 0xff)',
    'invalid-yaml.yaml': ':3: invalid YAML: mapping values are not allowed in this context',
    'key-duplicate.yaml': ":4: service 'api': field 'url': duplicate key (first at line 3)",
    'key-not-string.yaml': ":4: service 'api': field 'labels': keys must be strings, got number 1",
    'labels-bad-name.yaml': ":4: service 'api': field 'labels.team-name': invalid label name: [a-zA-Z_][a-zA-Z0-9_]*, not starting with __",
    'labels-dunder.yaml': ":4: service 'api': field 'labels.__name__': invalid label name: [a-zA-Z_][a-zA-Z0-9_]*, not starting with __",
    'labels-number-value.yaml': ":4: service 'api': field 'labels.tier': expected a string, got number 1; quote it",
    'labels-critical.yaml': ":4: service 'api': field 'labels.critical': label name is reserved (service, type, critical, job, instance)",
    'labels-reserved.yaml': ":4: service 'api': field 'labels.service': label name is reserved (service, type, critical, job, instance)",
    'labels-too-many.yaml': ":4: service 'api': field 'labels': at most 5 labels, got 6",
    'max-body-decimal-unit.yaml': ":4: service 'api': field 'max_body': invalid size '1MB': unknown unit 'MB'; write 1MiB (binary units, case-sensitive)",
    'max-body-number.yaml': ":4: service 'api': field 'max_body': expected a size like 1MiB, got number 1048576",
    'max-body-too-big.yaml': ":4: service 'api': field 'max_body': must be more than 0B and at most 64MiB, got '128MiB'",
    'method-lowercase.yaml': ":4: service 'api': field 'method': invalid value 'get': expected GET or HEAD",
    'missing-services.yaml': ':1: missing services (write services: [] for none)',
    'name-boolean.yaml': ":2: service '#0': field 'name': expected a string, got boolean no; quote it",
    'name-date.yaml': ":2: service '#0': field 'name': expected a string, got date 2024-01-01; quote it",
    'name-duplicate.yaml': ":4: service 'api': field 'name': duplicate service name (first at line 2)",
    'name-missing.yaml': ":2: service '#0': field 'name': missing name",
    'name-null.yaml': ":2: service '#0': field 'name': expected a string, got null",
    'name-pattern.yaml': ":2: service '#0': field 'name': invalid value 'Trading_API': lower-case letters, digits, _ and -, up to 63, starting with a letter or digit",
    'not-a-mapping.yaml': ':1: expected a mapping with a services list, got a list',
    'nul-byte.yaml': ':2: NUL byte in the file; is it a binary file?',
    'option-not-for-type.yaml': ":5: service 'ws': field 'method': does not apply to type tcp (its options: url, address)",
    'postgres-missing-url.yaml': ":2: service 'db': field 'url': missing url: postgresql:// or postgres://",
    'python-bad-check.yaml': ":4: service 'model': field 'check': invalid value 'mypackage.checks.model_ready': expected module.path:function",
    'python-missing-check.yaml': ":2: service 'model': field 'check': missing check: module.path:function",
    'redis-wrong-scheme.yaml': ":4: service 'cache': field 'url': invalid url 'http://localhost:6379': expected redis:// or rediss://",
    'service-not-mapping.yaml': ":2: service '#0': a service must be a mapping with a name, got string 'trading-api'",
    'services-not-list.yaml': ":2: field 'services': expected a list like [{name: api, url: http://host/health}], got a mapping",
    'tag-python.yaml': ':3: tags are not allowed (!!python/object/apply:os.system)',
    'tag-str.yaml': ':2: tags are not allowed (!!str)',
    'tcp-bad-address.yaml': ":4: service 'ws': field 'address': invalid address 'localhost': expected host:port or [v6]:port",
    'tcp-url-and-address.yaml': ":2: service 'ws': field 'url': a tcp service needs url or address (host:port), exactly one",
    'tcp-url-no-port.yaml': ":4: service 'ws': field 'url': url has no port and ftp:// has no default one",
    'threshold-huge.yaml': ":4: service 'api': field 'failure_threshold': must be between 1 and 1000, got 99999999999999999999999",
    'threshold-octal.yaml': ":4: service 'api': field 'failure_threshold': expected a whole number, got 010",
    'threshold-quoted.yaml': ":4: service 'api': field 'success_threshold': expected a whole number, got string '3'; remove the quotes",
    'threshold-zero.yaml': ":4: service 'api': field 'failure_threshold': must be between 1 and 1000, got 0",
    'timeout-too-long.yaml': ":4: service 'api': field 'timeout': must be more than 0s and at most 10m, got '15m'",
    'timeout-zero.yaml': ":4: service 'api': field 'timeout': must be more than 0s and at most 10m, got '0s'",
    'tls-ca-missing.yaml': ":4: service 'api': field 'tls.ca_file': cannot read file 'missing-ca.pem': No such file or directory",
    'tls-ca-not-pem.yaml': ":4: service 'api': field 'tls.ca_file': not a PEM certificate file (NO_CERTIFICATE_OR_CRL_FOUND)",
    'tls-server-name.yaml': ":4: service 'api': field 'tls.server_name': invalid value 'bad name': expected a host name",
    'tls-verify-no.yaml': ":4: service 'api': field 'tls.verify': expected true or false, got no",
    'two-documents.yaml': ':2: more than one YAML document (---) in the file',
    'type-missing-redis.yaml': ":3: service 'cache': field 'type': missing type: a redis:// url needs type: redis",
    'type-missing.yaml': ":2: service 'thing': field 'type': missing type: one of http, tcp, redis, postgres, python, websocket, dns, icmp, grpc, tls, push (an http(s) url implies http)",
    'type-unknown.yaml': ":3: service 'rpc': field 'type': invalid value 'ssh': expected one of http, tcp, redis, postgres, python, websocket, dns, icmp, grpc, tls, push",
    'unknown-defaults-key.yaml': ":2: field 'defaults.intervall': unknown field (did you mean 'interval'?)",
    'unknown-service-key.yaml': ":4: service 'api': field 'methd': unknown field (did you mean 'method'?)",
    'unknown-tls-key.yaml': ":4: service 'api': field 'tls.verfy': unknown field (did you mean 'verify'?)",
    'unknown-top-key.yaml': ":1: field 'service': unknown field (did you mean 'services'?)",
    'url-bad-port.yaml': ":3: service 'api': field 'url': invalid url 'http://localhost:99999/health': bad port or address",
    'url-password-redacted.yaml': ":3: service 'api': field 'url': invalid url 'http://user:***@localhost:99999/health': bad port or address",
    'dns-bad-rcode.yaml': ":6: service 'dns-internal': field 'valid_rcodes[1]': invalid value 'NOPE': expected one of NOERROR, FORMERR, SERVFAIL, NXDOMAIN, NOTIMP, REFUSED, YXDOMAIN, YXRRSET, NXRRSET, NOTAUTH, NOTZONE",
    'dns-bad-server.yaml': ":4: service 'dns-internal': field 'server': invalid server '127.0.0.1': expected host:port or [v6]:port",
    'dns-bad-transport.yaml': ":6: service 'dns-internal': field 'transport': invalid value 'quic': expected udp or tcp",
    'dns-bad-type.yaml': ":6: service 'dns-internal': field 'query_type': invalid value 'AXFR': expected one of A, AAAA, CNAME, MX, NS, PTR, SOA, SRV, TXT",
    'dns-missing-name.yaml': ":2: service 'dns-internal': field 'query_name': missing query_name: type dns needs query_name: a DNS name",
    'dns-url.yaml': ":6: service 'dns-internal': field 'url': does not apply to type dns (its options: server, query_name, query_type, transport, valid_rcodes, expect_answer)",
    'grpc-bad-address.yaml': ":4: service 'pricing-grpc': field 'address': invalid address 'pricing.internal': expected host:port or [v6]:port",
    'grpc-no-verify.yaml': ":5: service 'pricing-grpc': field 'tls.verify': a grpc channel always verifies the certificate; false is not supported",
    'icmp-count.yaml': ":5: service 'gateway-ping': field 'count': must be between 1 and 10, got 0",
    'icmp-missing-host.yaml': ":2: service 'gateway-ping': field 'host': missing host: type icmp needs host: a name or an address",
    'push-bad-silence.yaml': ":4: service 'nightly-pipeline': field 'max_silence': expected a duration like 30s, got number 26",
    'push-missing-silence.yaml': ":2: service 'nightly-pipeline': field 'max_silence': missing max_silence: type push needs max_silence: a duration like 26h",
    'push-url.yaml': ":5: service 'nightly-pipeline': field 'url': does not apply to type push (its options: max_silence)",
    'tls-condition-body.yaml': ":5: service 'fix-gateway-tls': field 'conditions[0]': [BODY] applies to http services only",
    'ws-bad-expect.yaml': ":5: service 'websocket': field 'expect': invalid regular expression '(tick': missing ), unterminated subpattern at position 0",
    'ws-bad-scheme.yaml': ":4: service 'websocket': field 'url': invalid url 'http://localhost:8080/ws': expected ws:// or wss://",
    'ws-conditions.yaml': ":5: service 'websocket': field 'conditions': type websocket takes no conditions (http and tls do)",
    'ws-missing-url.yaml': ":2: service 'websocket': field 'url': missing url: type websocket needs url: ws:// or wss://",
    'ws-tls-enabled.yaml': ":5: service 'websocket': field 'tls.enabled': unknown field",
    'url-space.yaml': ":3: service 'api': field 'url': invalid url 'http://localhost:8001/he alth': contains whitespace or control characters",
}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_bad_file_fails_with_its_message(name: str) -> None:
    path = CASES_DIR / name
    before = path.read_bytes()
    with pytest.raises(ConfigError) as info:
        load_config(path, environ={})
    assert str(info.value) == f"{path}{EXPECTED[name]}"
    assert path.read_bytes() == before


def test_every_case_file_is_in_the_table() -> None:
    on_disk = {p.name for p in CASES_DIR.glob("*.yaml")}
    assert on_disk == set(EXPECTED)
