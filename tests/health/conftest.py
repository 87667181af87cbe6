"""Fixtures of the health tests: the real target servers."""

from tests.support.targets import targets  # noqa: F401  (the fixture, re-exported)
