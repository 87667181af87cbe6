"""Fault tests: the sidecar's own fixtures, target servers and private Redis/Postgres."""

from tests.security.conftest import make_sidecar, running, tls_files  # noqa: F401  (fixtures)
from tests.support.private_redis import private_redis  # noqa: F401  (fixture)
from tests.support.targets import targets  # noqa: F401  (fixture)

__all__ = ["running"]
