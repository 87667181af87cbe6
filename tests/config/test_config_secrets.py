"""Secrets arrive through ${VAR}: they never appear in an error or in the printable config."""

from __future__ import annotations

import json

import pytest

from exporter.config import ConfigError, parse_config, public_service, redact_config, redact_url

CANARY = "Canary-7F3A91-Secret"
HEAD = "services:\n  - name: api\n    url: http://h/x\n"


@pytest.mark.parametrize(
    ("yaml_text", "value", "expected"),
    [
        ("services:\n  - name: api\n    url: ${V}\n", f"http://u:{CANARY}@h:99999/", "field 'url': invalid url '${V}': bad port or address"),
        ("services:\n  - name: api\n    url: ${V}\n", f"http://h/{CANARY} x", "field 'url': invalid url '${V}': contains whitespace or control characters"),
        ("services:\n  - name: c\n    type: redis\n    url: ${V}\n", f"http://u:{CANARY}@h/", "field 'url': invalid url '${V}': expected redis:// or rediss://"),
        ("services:\n  - name: c\n    url: ${V}\n", f"redis://:{CANARY}@h/", "field 'type': missing type: a redis:// url needs type: redis"),
        ("services:\n  - name: ${V}\n    url: http://h/x\n", CANARY, "field 'name': invalid value '${V}'"),
        (HEAD + "    failure_threshold: ${V}\n", CANARY, "field 'failure_threshold': expected a whole number, got '${V}'"),
        (HEAD + "    critical: ${V}\n", CANARY, "field 'critical': expected true or false, got '${V}'"),
        (HEAD + "    interval: ${V}\n", CANARY, "field 'interval': invalid duration '${V}'"),
        (HEAD + "    max_body: ${V}\n", CANARY, "field 'max_body': invalid size '${V}'"),
        (HEAD + "    method: ${V}\n", CANARY, "field 'method': invalid value '${V}'"),
        (HEAD + '    expect_status: ["${V}"]\n', CANARY, "field 'expect_status[0]': expected a whole number, got '${V}'"),
        (HEAD + '    headers: {Authorization: "Bearer ${V}"}\n', CANARY + "\r\nX-Injected: 1", "field 'headers.Authorization': value contains a line break or control character (redacted)"),
        (HEAD + '    labels: {team: "${V}"}\n', CANARY * 20, "field 'labels.team': label value must be 1 to 256 characters"),
        (HEAD + '    conditions: ["[BODY].token == ${V}"]\n', CANARY, "field 'conditions[0]': invalid condition '[BODY].token == ${V}' after expansion"),
        (HEAD + "    tls: {server_name: \"${V}\"}\n", CANARY + " x", "field 'tls.server_name': invalid value '${V}'"),
        (HEAD + "    tls: {ca_file: \"${V}\"}\n", "/nonexistent/" + CANARY, "field 'tls.ca_file': cannot read file '${V}'"),
        ("services:\n  - name: m\n    type: python\n    check: ${V}\n", CANARY, "field 'check': invalid value '${V}'"),
        ("services:\n  - name: w\n    type: tcp\n    address: ${V}\n", CANARY, "field 'address': invalid address '${V}'"),
        ('services: []\nallowed_targets: ["${V}"]\n', CANARY, "field 'allowed_targets[0]': invalid target '${V}'"),
        ('services: []\nallowed_targets: ["${V}"]\n', "10.0.0.1/8" + CANARY, "field 'allowed_targets[0]': invalid network '${V}'"),
    ],
)
def test_errors_never_show_an_expanded_value(yaml_text: str, value: str, expected: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_config(yaml_text, environ={"V": value})
    message = str(info.value)
    assert expected in message
    assert CANARY not in message
    assert CANARY not in repr(info.value)
    assert all(CANARY not in str(arg) for arg in info.value.args)


def test_printable_config_hides_header_values_and_url_passwords() -> None:
    text = (
        "services:\n"
        "  - name: api\n    url: http://ops:${PW}@api.internal:8001/health?token=${PW}&verbose=1\n"
        '    headers: {Authorization: "Bearer ${PW}", X-Trace: "on"}\n'
        "  - name: db\n    type: postgres\n    url: postgresql://writer:${PW}@db:5432/usdcop?password=${PW}\n"
    )
    config = parse_config(text, environ={"PW": CANARY})
    assert config.services[0].headers == (("Authorization", f"Bearer {CANARY}"), ("X-Trace", "on"))
    printable = json.dumps(redact_config(config))
    assert CANARY not in printable
    api = public_service(config.services[0])
    assert api["headers"] == {"Authorization": "***", "X-Trace": "***"}
    assert api["url"] == "http://ops:***@api.internal:8001/health?token=***&verbose=1"
    assert public_service(config.services[1])["url"] == "postgresql://writer:***@db:5432/usdcop?password=***"


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("http://user:pa:ss@host/x", "http://user:***@host/x"),
        ("redis://:pw@cache:6379/0", "redis://:***@cache:6379/0"),
        ("postgresql://localhost:5432/usdcop", "postgresql://localhost:5432/usdcop"),
        ("http://user@host/x", "http://user@host/x"),
        ("http://h/x?a=1&b=2#frag", "http://h/x?a=1&b=2#frag"),
        ("http://h/x?api_key=k&a=1#frag", "http://h/x?api_key=***&a=1#frag"),
        ("http://u:p@host:99999/not-even-valid", "http://u:***@host:99999/not-even-valid"),
    ],
)
def test_redact_url(url: str, expected: str) -> None:
    assert redact_url(url) == expected


def test_printable_config_hides_websocket_headers_first_message_and_url_token() -> None:
    text = """services:
  - name: market-ws
    type: websocket
    url: "wss://md.internal/ws?token=tok-123"
    headers: {Authorization: "Bearer hdr-456"}
    send: '{"op": "auth", "key": "snd-789"}'
    expect: authenticated
"""
    printed = json.dumps(redact_config(parse_config(text, "services.yaml")))
    for secret in ("tok-123", "hdr-456", "snd-789"):
        assert secret not in printed
    svc = public_service(parse_config(text, "services.yaml").services[0])
    assert (svc["send"], svc["headers"], svc["expect"]) == ("***", {"Authorization": "***"}, "authenticated")
