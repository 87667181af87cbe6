"""A real grpcio server with the standard health service on a free loopback port, plain
or behind the test CA's certificate; `set(service, serving)` switches a status."""

from __future__ import annotations

import atexit
import shutil
import tempfile
from contextlib import asynccontextmanager
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import grpc
import trustme
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


@dataclass
class GrpcTarget:
    port: int
    servicer: health.aio.HealthServicer

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    async def set(self, service: str, status) -> None:
        await self.servicer.set(service, status)


@lru_cache(maxsize=1)
def grpc_tls() -> tuple[str, bytes, bytes]:
    """(ca_file, key PEM, certificate chain PEM) of a CA of these tests, for localhost."""
    ca = trustme.CA()
    leaf = ca.issue_cert("localhost", "127.0.0.1")
    tmp = tempfile.mkdtemp(prefix="usdcop-grpc-")
    atexit.register(shutil.rmtree, tmp, ignore_errors=True)
    ca_file = str(Path(tmp) / "ca.pem")
    ca.cert_pem.write_to_path(ca_file)
    chain = b"".join(blob.bytes() for blob in leaf.cert_chain_pems)
    return ca_file, leaf.private_key_pem.bytes(), chain


def _server_credentials() -> grpc.ServerCredentials:
    _, key, chain = grpc_tls()
    return grpc.ssl_server_credentials([(key, chain)])


@asynccontextmanager
async def grpc_target(tls: bool = False):
    """A health server: "" and "pricing.Quotes" SERVING until switched."""
    server = grpc.aio.server()
    servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(servicer, server)
    if tls:
        port = server.add_secure_port("127.0.0.1:0", _server_credentials())
    else:
        port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    target = GrpcTarget(port, servicer)
    await target.set("", SERVING)
    await target.set("pricing.Quotes", SERVING)
    try:
        yield target
    finally:
        await server.stop(0)


