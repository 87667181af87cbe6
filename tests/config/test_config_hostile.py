"""Whatever bytes arrive, loading ends in a Config or a ConfigError, never a traceback."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from exporter.config import Config, ConfigError, parse_bytes

# Fragments that steer random text towards the interesting corners of YAML and of our schema.
FRAGMENTS = [
    "services:", "defaults:", "allowed_targets:", "\n", "  ", "- ", "name: ", "url: ", "type: ",
    "tcp", "http://h:1/x", "redis://h", "[", "]", "{", "}", ",", ": ", "&a ", "*a", "!!str ",
    "!!python/object:os.system ", "${X}", "${X:-d}", "$$", "${", "'", '"', "no", "0755", "1:30",
    "30s", "1MiB", "~", "null", "true", "[STATUS] == 200", "conditions:", "labels:", "tls:",
    "verify: ", "headers:", "expect_status:", "2xx", "---", "#", "\t", "\x00", "\xff", "\ud800",
]


def _load(data: bytes) -> None:
    try:
        result = parse_bytes(data, "<fuzz>", {"X": "x"}, "/")
    except ConfigError as exc:
        assert str(exc).startswith("<fuzz>")
    else:
        assert isinstance(result, Config)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=512))
def test_random_bytes(data: bytes) -> None:
    _load(data)


@settings(max_examples=400, deadline=None)
@given(st.lists(st.sampled_from(FRAGMENTS), max_size=40))
def test_yaml_shaped_text(parts: list[str]) -> None:
    _load("".join(parts).encode("utf-8", "surrogatepass"))
