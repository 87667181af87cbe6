"""Fixtures of the health tests: the real target servers."""

from tests.support.targets import targets  # noqa: F401  (the fixture, re-exported)
from tests.support.ws_targets import ws_targets  # noqa: F401  (the fixture, re-exported)
