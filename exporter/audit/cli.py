"""`usdcop-exporter audit verify|export`: check the chain, write it out as JSON lines."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path

from ..progress import Progress, is_terminal
from ..settings import SettingsError, load_settings
from ..units import plural
from .errors import AuditError, AuditValidationError
from .events import parse_time
from .store_sqlite import SqliteStore
from .verify import VERIFY_KEYS, verify_file, verify_store

EXIT_OK, EXIT_BROKEN, EXIT_CANNOT = 0, 1, 2


def add_parser(subparsers) -> None:
    """Add `audit verify` and `audit export` to the program's sub-commands."""
    audit = subparsers.add_parser(
        "audit", help="verify or export the audit trail",
        description="Verify the audit chain (in the database, or offline in an export) or "
        "export it as JSON lines. The store is POSTGRES_URL, else AUDIT_SQLITE_PATH.")
    sub = audit.add_subparsers(dest="audit_command", metavar="ACTION", required=True)
    verify = sub.add_parser(
        "verify", help="check the hashes, links, checkpoints and purge records",
        description="Check the chain: hashes, links, the checkpoint and purge-record "
        "signatures (AUDIT_CHECKPOINT_KEY), that every purge removed only events older than "
        "its horizon, and that the head is not behind the newest checkpoint in the "
        "checkpoint directory. In the database it continues from the newest signed "
        "checkpoint unless --full is given. Prints the result as JSON. Exit 0 when intact, "
        "1 naming the first broken link, 2 when it cannot verify (store unreachable, "
        "unreadable file).")
    verify.add_argument("--file", metavar="EXPORT.jsonl",
                        help="verify an `audit export` file offline instead of the database")
    verify.add_argument("--checkpoint-dir", metavar="DIR",
                        help="checkpoints written outside the database (AUDIT_CHECKPOINT_DIR;"
                        " with --file, used only when given)")
    verify.add_argument("--full", action="store_true",
                        help="re-hash every stored event instead of continuing from the newest"
                        " signed checkpoint (an export file is always checked in full)")
    verify.set_defaults(func=cmd_verify)
    export = sub.add_parser(
        "export", help="write events as JSON lines",
        description="Write stored events, oldest first, one JSON object per line (the API's "
        "form, hashes in hex). --since and --until select by receipt time (received_at), "
        "which rises with sequence: the output is one contiguous stretch of the chain that "
        "`audit verify --file` can check on its own.")
    export.add_argument("--since", metavar="TIME", help="ISO-8601 with offset, inclusive")
    export.add_argument("--until", metavar="TIME", help="ISO-8601 with offset, exclusive")
    export.add_argument("--output", metavar="FILE", default="-",
                        help="where to write (default: standard output)")
    export.set_defaults(func=cmd_export)


def _fail(code: int, message: str) -> int:
    print(f"usdcop-exporter audit: {message}", file=sys.stderr)
    return code


def _store(settings):
    if settings.postgres_url:
        from .store_pg import PgStore  # psycopg only where Postgres is used

        return PgStore(settings.postgres_url, settings.postgres_admin_url)
    path = Path(settings.audit_sqlite_path)
    if not path.exists():
        raise AuditError(f"no audit store: POSTGRES_URL is not set and {path} does not exist")
    return SqliteStore(path)


def _chain_bar(label: str, head: int | None) -> tuple[Progress, object]:
    """A progress bar over the chain up to `head`, and the callback that feeds it chunks of
    events (the first chunk's sequence says where the stored chain starts)."""
    bar = Progress(label, sys.stderr)

    def seen(events: list[dict]) -> None:
        if bar.done == 0 and head:
            bar.total = max(head - events[0]["sequence"] + 1, len(events))
        bar.advance(len(events))

    return bar, seen


def _count_lines(path: str) -> int:
    with open(path, "rb") as f:
        return sum(block.count(b"\n") for block in iter(lambda: f.read(1 << 20), b""))


async def _verify_db(settings, full: bool) -> dict:
    store = _store(settings)
    await store.open()  # no migration: verifying never changes the database
    try:
        head = (await store.head())[0]
        bar, seen = _chain_bar("audit verify", head)
        try:
            return await verify_store(store, settings.audit_checkpoint_dir,
                                      settings.audit_checkpoint_key, full=full,
                                      retention=settings.audit_retention, progress=seen)
        finally:
            bar.finish()
    finally:
        await store.close()


async def _verify_export(path: str, checkpoint_dir, key, retention: float) -> dict:
    bar = Progress("audit verify", sys.stderr)
    if bar.enabled:
        bar.total = _count_lines(path) or None
    try:
        return await verify_file(path, checkpoint_dir, key, retention=retention,
                                 progress=lambda events: bar.advance(len(events)))
    finally:
        bar.finish()


def _report(result: dict) -> int:
    print(json.dumps({k: result[k] for k in VERIFY_KEYS}, indent=2))
    for warning in result["warnings"]:
        print(f"usdcop-exporter audit: warning: {warning}", file=sys.stderr)
    if result["ok"]:
        return EXIT_OK
    broken = result["first_broken"]
    return _fail(EXIT_BROKEN, f"chain broken at sequence {broken['sequence']}: "
                              f"{broken['reason']} ({broken['detail']})")


def cmd_verify(args: argparse.Namespace) -> int:
    """audit verify [--file] [--checkpoint-dir] [--full]."""
    try:
        settings = load_settings(checkpoint_dir=args.checkpoint_dir)
    except SettingsError as exc:
        return _fail(EXIT_CANNOT, str(exc))
    try:
        if args.file:
            result = asyncio.run(_verify_export(args.file, args.checkpoint_dir,
                                                settings.audit_checkpoint_key,
                                                settings.audit_retention))
        else:
            result = asyncio.run(_verify_db(settings, args.full))
    except (AuditError, OSError, ValueError) as exc:
        return _fail(EXIT_CANNOT, f"cannot verify: {exc}")
    return _report(result)


async def _export(settings, since, until, out) -> tuple[int, int | None, int | None]:
    store = _store(settings)
    await store.open()
    count, first, last = 0, None, None
    # The whole chain has a known end (its head); a time window's size is not known ahead.
    head = (await store.head())[0] if since is None and until is None else None
    bar, seen = _chain_bar("audit export", head)
    if out is sys.stdout and is_terminal(sys.stdout):
        bar.enabled = False  # the events themselves go to this terminal
    try:
        async for event in store.iter_events(since=since, before=until):
            view = dict(event, prev_hash=event["prev_hash"].hex(), hash=event["hash"].hex())
            out.write(json.dumps(view, ensure_ascii=False, separators=(",", ":")) + "\n")
            count += 1
            first = first or event["sequence"]
            last = event["sequence"]
            seen([event])
    finally:
        bar.finish()
        await store.close()
    return count, first, last



def cmd_export(args: argparse.Namespace) -> int:
    """audit export [--since] [--until] [--output]."""
    try:
        settings = load_settings()
        since = parse_time(args.since, "--since") if args.since else None
        until = parse_time(args.until, "--until") if args.until else None
    except SettingsError as exc:
        return _fail(EXIT_CANNOT, str(exc))
    except AuditValidationError as exc:
        return _fail(EXIT_CANNOT, exc.detail)
    try:
        if args.output == "-":
            count, first, last = asyncio.run(_export(settings, since, until, sys.stdout))
        else:
            tmp = Path(args.output + ".partial")
            with open(tmp, "w") as out:
                count, first, last = asyncio.run(_export(settings, since, until, out))
            tmp.replace(args.output)
    except (AuditError, OSError) as exc:
        return _fail(EXIT_CANNOT, f"cannot export: {exc}")
    where = "standard output" if args.output == "-" else args.output
    span = f" (sequences {first}..{last})" if count else ""
    print(f"usdcop-exporter audit: exported {plural(count, 'event')}{span} to {where}",
          file=sys.stderr)
    return EXIT_OK
