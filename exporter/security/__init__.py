"""Hardening of the sidecar's own HTTP server: web configuration, TLS, basic auth, limits."""

from .basic_auth import BasicAuth
from .ratelimit import TokenBucket
from .server import ConnectionGuard, GuardedSite
from .tls import ServerTLS, build_server_context
from .web import WebSecurity
from .webconfig import WebConfig, load_web_config

__all__ = ["BasicAuth", "ConnectionGuard", "GuardedSite", "ServerTLS", "TokenBucket", "WebConfig",
           "WebSecurity", "build_server_context", "load_web_config"]
