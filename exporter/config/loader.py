"""Loading services.yaml into a frozen Config; comparing two Configs for reload."""

from __future__ import annotations

import hashlib
import ipaddress
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import fields as dataclass_fields
from dataclasses import replace
from typing import Any, NamedTuple

from . import fields
from .desk import parse_desk
from .errors import CheckImportError, ConfigError, ConfigErrors
from .model import Config, Defaults, DeskConfig, ServiceConfig
from .services import build_service, join_host_port, read_default, resolve_check, split_host_port
from .yamlsafe import MAX_BYTES, compose, decode, from_python

TOP_KEYS = ("defaults", "services", "allowed_targets", "desk")


class ConfigDiff(NamedTuple):
    """Service names added, removed and changed between two configs, each sorted."""

    added: tuple[str, ...]
    removed: tuple[str, ...]
    changed: tuple[str, ...]


def load_config(path: str | os.PathLike[str], environ: Mapping[str, str] | None = None) -> Config:
    """Read, validate and freeze the services file at `path`."""
    source = os.fspath(path)
    try:
        with open(source, "rb") as fh:
            data = fh.read(MAX_BYTES + 1)
    except OSError as exc:
        raise ConfigError(f"cannot read the file: {exc.strerror or exc}", file=source) from None
    base_dir = os.path.dirname(os.path.abspath(source))
    return parse_bytes(data, source, environ, base_dir)


def parse_config(text: str, source: str = "<string>", environ: Mapping[str, str] | None = None,
                 base_dir: str | None = None) -> Config:
    """Validate services.yaml content given as text; `source` names it in errors."""
    try:
        data = text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise ConfigError(f"not valid text (character {exc.start})", file=source) from None
    if base_dir is None:
        base_dir = os.path.dirname(os.path.abspath(source)) if not source.startswith("<") else os.getcwd()
    return parse_bytes(data, source, environ, base_dir)


def parse_bytes(data: bytes, source: str, environ: Mapping[str, str] | None, base_dir: str) -> Config:
    """The Config in `data`, the raw bytes of a services file."""
    text = decode(data, source)
    root = compose(text, source)
    ctx = fields.Ctx(source, os.environ if environ is None else environ, base_dir)
    if root is None:
        raise ConfigError("the file is empty; write services: [] for no services", file=source, line=1)
    if root.kind != "map":
        raise ctx.error(root, None, f"expected a mapping with a services list, got {fields.describe(root)}")
    top = fields.mapping(ctx, root, None, TOP_KEYS)
    if "services" not in top:
        raise ConfigError("missing services (write services: [] for none)", file=source, line=root.line)
    errors: list[ConfigError] = []
    defaults = _defaults(ctx, top["defaults"], errors) if "defaults" in top else Defaults()
    services = _services(ctx, top["services"], defaults, errors)
    targets = _allowed_targets(ctx, top["allowed_targets"], errors) if "allowed_targets" in top else ()
    desk = DeskConfig()
    if "desk" in top:
        try:
            desk = parse_desk(ctx, top["desk"])
        except ConfigError as exc:
            errors.append(exc)
    if errors:
        raise ConfigErrors(errors)
    return Config(services=services, defaults=defaults, allowed_targets=targets, source=source,
                  digest=hashlib.sha256(data).hexdigest(), desk=desk)


def import_checks(config: Config) -> None:
    """Import every python service's `check` and make sure it names a callable.

    Loading a file never imports user code; `check-config`, `serve` and reload call this
    after loading, so a check that cannot be imported stops them (ConfigError naming
    file:line, service and field) instead of failing every probe later.
    """
    for svc in config.services:
        if svc.type != "python" or svc.check is None:
            continue
        try:
            resolve_check(svc.check)
        except ConfigError as exc:
            raise CheckImportError(exc.message, file=config.source, line=svc.line,
                                   service=svc.name, field="check") from None


def _defaults(ctx: fields.Ctx, node: Any, errors: list[ConfigError]) -> Defaults:
    """The defaults: section; a bad entry goes to `errors` and its built-in default stays."""
    names = [field.name for field in dataclass_fields(Defaults)]
    try:
        entries = fields.mapping(ctx, node, "defaults", names)
    except ConfigError as exc:
        errors.append(exc)
        return Defaults()
    inner = ctx.under("defaults")
    read = {}
    for name, value in entries.items():
        try:
            read[name] = read_default(inner, value, name)
        except ConfigError as exc:
            errors.append(exc)
    return Defaults(**read)


def _services(ctx: fields.Ctx, node: Any, defaults: Defaults,
              errors: list[ConfigError]) -> tuple[ServiceConfig, ...]:
    """Every valid service; the problems of the others go to `errors`."""
    items = fields.sequence(ctx, node, "services", "[{name: api, url: http://host/health}]")
    seen: dict[str, int | None] = {}
    out = []
    for index, item in enumerate(items):
        svc = _service(ctx, item, index, defaults, errors)
        if svc is None:
            continue
        if svc.name in seen:
            first = f" (first at line {seen[svc.name]})" if seen[svc.name] else ""
            errors.append(ConfigError(f"duplicate service name{first}", file=ctx.file,
                                      line=item.line, service=svc.name, field="name"))
            continue
        seen[svc.name] = svc.line
        out.append(svc)
    return tuple(out)


# Fields that decide what a service is: without them any further error would be one the
# removal itself caused, so the search for more problems in a service stops at them.
_IDENTITY = frozenset({"name", "type", "url", "address", "check"})


def _service(ctx: fields.Ctx, node: Any, index: int, defaults: Defaults,
             errors: list[ConfigError]) -> ServiceConfig | None:
    """One service, or None with each of its problems in `errors`.

    After a problem in a field, the service is validated again without that field, so
    one run names every bad field of a service (a missing field the removal caused is
    not reported).
    """
    dropped: set[str] = set()
    while True:
        try:
            svc = build_service(ctx, node, index, defaults)
        except ConfigError as exc:
            key = re.split(r"[.\[]", exc.field)[0] if exc.field else None
            if key in dropped:
                return None  # caused by a field taken out above
            errors.append(exc)
            keys = {k.value for k, _ in node.value} if node.kind == "map" else set()
            if key is None or key in _IDENTITY or key not in keys:
                return None
            dropped.add(key)
            node = replace(node, value=[(k, v) for k, v in node.value if k.value != key])
            continue
        return None if dropped else svc


def _allowed_targets(ctx: fields.Ctx, node: Any, errors: list[ConfigError]) -> tuple[str, ...]:
    """The allowed_targets list; each bad entry goes to `errors`."""
    try:
        items = fields.sequence(ctx, node, "allowed_targets", '[10.0.0.0/8, "api.internal:8001"]')
    except ConfigError as exc:
        errors.append(exc)
        return ()
    if not items:
        errors.append(ctx.error(node, "allowed_targets",
                                "an empty list allows nothing; remove it to allow every target"))
        return ()
    out = []
    for i, item in enumerate(items):
        field = f"allowed_targets[{i}]"
        try:
            value, shown = fields.text(ctx, item, field, "a CIDR or host:port string")
            out.append(_target(ctx, item, field, value, shown))
        except ConfigError as exc:
            errors.append(exc)
    return tuple(dict.fromkeys(out))


def _target(ctx: fields.Ctx, node: Any, field: str, value: str, shown: str) -> str:
    if "/" in value:
        try:
            return str(ipaddress.ip_network(value, strict=True))
        except ValueError as exc:
            detail = f": {exc}" if shown == repr(value) else ""  # ipaddress repeats the value
            raise ctx.error(node, field, f"invalid network {shown}{detail}") from None
    try:
        return str(ipaddress.ip_network(value))  # a single address
    except ValueError:
        pass
    hp = split_host_port(value)
    if hp is None:
        raise ctx.error(node, field, f"invalid target {shown}: expected a CIDR (10.0.0.0/8), an address, or host:port")
    return join_host_port(hp[0].lower(), hp[1])


def build_service_config(options: Mapping[str, Any], defaults: Defaults | None = None,
                         check_fn: Callable[..., Any] | None = None) -> ServiceConfig:
    """A validated ServiceConfig from Python values (the library's register()).

    Same rules as services.yaml, except durations may be plain numbers of seconds and
    sizes plain numbers of bytes; `check_fn` makes a python service from a callable.
    """
    ctx = fields.Ctx(None, {}, os.getcwd())
    return build_service(ctx, from_python(dict(options)), 0, defaults or Defaults(), check_fn=check_fn)


def service_from_options(name: str, *, url: str | None = None, interval: float | str | None = None,
                         timeout: float | str | None = None,
                         health_check: Callable[..., Any] | None = None,
                         defaults: Defaults | None = None, **probe_options: Any) -> ServiceConfig:
    """The ServiceConfig for ServiceRegistry.register(); None leaves a field to `defaults`."""
    given = {"url": url, "interval": interval, "timeout": timeout}
    options = {"name": name, **{k: v for k, v in given.items() if v is not None}, **probe_options}
    return build_service_config(options, defaults, check_fn=health_check)


def diff_configs(old: Config, new: Config) -> ConfigDiff:
    """What a reload from `old` to `new` adds, removes and changes (by service name)."""
    before = {svc.name: svc for svc in old.services}
    after = {svc.name: svc for svc in new.services}
    return ConfigDiff(
        added=tuple(sorted(after.keys() - before.keys())),
        removed=tuple(sorted(before.keys() - after.keys())),
        changed=tuple(sorted(n for n in before.keys() & after.keys() if before[n] != after[n])),
    )
