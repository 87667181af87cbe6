"""gRPC prober: the standard health service (grpc.health.v1.Health/Check) for
`grpc_service` ("" asks about the whole server).

The address is resolved here and the channel opened to the allowed address itself, so
allowed_targets holds whatever the name resolves to. With `tls.enabled`, a TLS handshake
of our own comes first (phase `tls`, certificate expiry, a clear reason `tls` when it is
refused), then the channel verifies the same way. Phases: resolve, connect (the channel becoming ready), check (the RPC); with TLS,
connect and tls are those of our own handshake and the channel's setup counts in check.
SERVING is success; NOT_SERVING, SERVICE_UNKNOWN (or a NOT_FOUND answer) and UNKNOWN are
reason `status`; no HTTP/2 connection is reason `connect`. grpcio comes with the `grpc`
extra; the configuration refuses type grpc without it.
"""

from __future__ import annotations

import asyncio

from ...config.model import ServiceConfig
from ...config.services import split_host_port
from ..result import ProbeResult
from .base import ProbeContext
from .connect import Failed, Timer, close, open_stream, resolve
from .tls import ca_bytes

MARGIN = 0.05  # seconds kept before the hard timeout to say why rather than `timeout`


def _target(address: str, port: int) -> str:
    return f"ipv6:[{address}]:{port}" if ":" in address else f"ipv4:{address}:{port}"


async def _ready(channel, grpc, deadline: float, ctx: ProbeContext) -> None:
    loop = asyncio.get_running_loop()
    state = channel.get_state(try_to_connect=True)
    while state != grpc.ChannelConnectivity.READY:
        if state == grpc.ChannelConnectivity.TRANSIENT_FAILURE:
            raise Failed("connect", "no gRPC (HTTP/2) connection: the channel failed")
        remaining = deadline - loop.time()
        if remaining <= 0:
            raise Failed("connect", "no gRPC (HTTP/2) connection before the deadline")
        try:
            async with asyncio.timeout(remaining):
                await channel.wait_for_state_change(state)
        except TimeoutError:
            raise Failed("connect", "no gRPC (HTTP/2) connection before the deadline") from None
        state = channel.get_state(try_to_connect=True)
        ctx.note(f"channel state {state.name}")


async def probe_grpc(service: ServiceConfig, ctx: ProbeContext) -> ProbeResult:
    """Ask the server's health service about `grpc_service`."""
    import grpc
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    timer = Timer()
    host, port = split_host_port(service.address or "") or ("", 0)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + ctx.timeout - min(MARGIN, ctx.timeout / 10)
    tls = service.tls if service.tls.enabled else None
    expiry = None
    serving = None
    code = None
    try:
        if tls is not None:
            _, writer, expiry = await open_stream(host, port, ctx, timer, tls)
            address = writer.get_extra_info("peername")[0]
            await close(writer)
        else:
            infos = await resolve(host, port, ctx, timer)
            address = infos[0][4][0]
        options = [("grpc.default_authority", host), ("grpc.enable_retries", 0)]
        if tls is not None:
            try:
                root = ca_bytes(tls)
            except OSError as exc:
                raise Failed("tls", f"cannot read ca_file: {exc.strerror or exc}") from None
            credentials = grpc.ssl_channel_credentials(root_certificates=root)
            options.append(("grpc.ssl_target_name_override", tls.server_name or host))
            channel = grpc.aio.secure_channel(_target(address, port), credentials, options=options)
        else:
            channel = grpc.aio.insecure_channel(_target(address, port), options=options)
        ctx.note(f"opening a gRPC channel to {address} port {port}"
                 + (" with TLS" if tls is not None else ""))
        try:
            timer.restart()
            await _ready(channel, grpc, deadline, ctx)
            if tls is None:
                timer.lap("connect")
            # With TLS, connect and tls were timed on our own handshake; the channel's own
            # connection setup counts in check.
            ctx.note(f"asking grpc.health.v1.Health/Check about {service.grpc_service or '(the server)'}")
            stub = health_pb2_grpc.HealthStub(channel)
            try:
                answer = await stub.Check(health_pb2.HealthCheckRequest(service=service.grpc_service),
                                          timeout=max(deadline - loop.time(), 0.001))
            except grpc.aio.AioRpcError as exc:
                code = exc.code()
                if code == grpc.StatusCode.NOT_FOUND:
                    serving = "SERVICE_UNKNOWN"
                    raise Failed("status", f"health service answers NOT_FOUND for "
                                           f"{service.grpc_service!r} (SERVICE_UNKNOWN)") from None
                if code == grpc.StatusCode.DEADLINE_EXCEEDED:
                    raise Failed("timeout", "Check got no answer before the deadline") from None
                if code == grpc.StatusCode.UNAVAILABLE:
                    raise Failed("connect", f"Check failed: {code.name}") from None
                raise Failed("status", f"Check failed: {code.name}: {exc.details()}"[:200]) from None
            finally:
                timer.lap("check")
            code = grpc.StatusCode.OK
            serving = health_pb2.HealthCheckResponse.ServingStatus.Name(answer.status)
            ctx.note(f"serving status {serving}")
        finally:
            await channel.close()
        if serving != "SERVING":
            raise Failed("status", f"serving status {serving}")
    except Failed as failed:
        ctx.note(f"failure ({failed.reason}): {failed.message}")
        return ProbeResult.failure(failed.reason, timer.elapsed(), failed.message,
                                   phases=timer.phases, tls_expiry=expiry,
                                   facts=_facts(timer, serving, code, tls is not None))
    ctx.note("success")
    return ProbeResult(success=True, duration_s=timer.elapsed(), phases=timer.phases,
                       tls_expiry=expiry, facts=_facts(timer, serving, code, tls is not None),
                       extra={"serving_status": serving})


def _facts(timer: Timer, serving: str | None, code, ssl: bool) -> dict[str, object]:
    facts: dict[str, object] = {**timer.facts, "ssl": ssl}
    if serving is not None:
        facts["serving_status"] = serving
    if code is not None:
        facts["status_code"] = code.value[0]
    return facts
