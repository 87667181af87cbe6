"""Signed purge records: what an AUDIT_PURGED event must show to account for a removed prefix.

The retention purge writes `{from_sequence, through_sequence, through_hash, purged, horizon,
partitions, checkpoint, at, retention, signature}` as the event's data: `checkpoint` names
the newest checkpoint at or below `through_sequence` (`{sequence, digest}`, null when none),
`at` is the purge's time, `retention` its AUDIT_RETENTION in seconds, and `signature` the
HMAC-SHA256 of the canonical data without it under AUDIT_CHECKPOINT_KEY (null without a
key). The same data goes to `purge-<through_sequence>.json` in the checkpoint directory.

`check` raises PurgeRefused naming why a purge record does not account for what it removed:
  purge_malformed          the data lacks a field, or names a range not before the record
  purge_unsigned           a key is configured and the record carries no signature
  purge_signature          the signature does not verify under the key
  purge_too_recent         its horizon is later than its time minus the retention, or a
                           checkpoint shows purged events were received after the horizon
  purge_unnamed_checkpoint a checkpoint covers purged events and the record does not name it
  purge_mismatch           the copy in the checkpoint directory says something else
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from . import checkpoints as cps
from .chain import canonical

CLOCK_TOLERANCE = 300.0  # seconds: the sidecar's and the database's clocks may differ this much
_DOMAIN = b"usdcop-audit-purge\n"
_HASH_RE = re.compile(r"[0-9a-f]{64}")


class PurgeRefused(Exception):
    """A purge record that does not account for what it removed."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


def body(data: dict[str, Any]) -> dict[str, Any]:
    """The signed part of a purge record: its data without the signature."""
    return {k: v for k, v in data.items() if k != "signature"}


def sign(data: dict[str, Any], key: bytes | None) -> str | None:
    """HMAC-SHA256 (hex) of the record's canonical body, or None without a key."""
    if not key:
        return None
    return hmac.new(key, _DOMAIN + canonical(body(data)), hashlib.sha256).hexdigest()


def signature_ok(data: dict[str, Any], key: bytes) -> bool:
    """True when the record carries a valid signature under `key`."""
    sig = data.get("signature")
    return isinstance(sig, str) and hmac.compare_digest(sig, sign(data, key) or "")


def named_checkpoint(cp: dict[str, Any] | None) -> dict[str, Any] | None:
    """How a purge names a checkpoint: `{sequence, digest}`."""
    return {"sequence": cp["sequence"], "digest": cps.digest(cp)} if cp else None


def file_name(through: int) -> str:
    """purge-<through_sequence, 20 digits>.json."""
    return f"purge-{through:020d}.json"


def write_file(directory: str | Path, data: dict[str, Any]) -> Path:
    """Write a purge record to the checkpoint directory (atomically, durably)."""
    return cps.write_json(directory, file_name(data["through_sequence"]), data)


def read_dir(directory: str | Path | None) -> tuple[dict[int, dict[str, Any]], list[str]]:
    """Purge records in a directory by through_sequence, and the files that could not be read."""
    found: dict[int, dict[str, Any]] = {}
    errors: list[str] = []
    if directory is None or not Path(directory).is_dir():
        return found, errors
    for path in sorted(Path(directory).glob("purge-*.json")):
        try:
            data = json.loads(path.read_text())
            if not isinstance(data, dict) or not isinstance(data.get("through_sequence"), int):
                raise ValueError("missing through_sequence")
            found[data["through_sequence"]] = data
        except (OSError, ValueError) as exc:
            errors.append(f"{path}: {exc}")
    return found, errors


def _time(text: Any) -> datetime | None:
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00")) if isinstance(text, str) \
            else None
    except ValueError:
        return None


def _source(cp: dict[str, Any]) -> str:
    return f"{cp['_file']} in the checkpoint directory" if cp.get("_file") else \
        f"#{cp['sequence']} in the database"


def check(event: dict[str, Any], checkpoints: list[dict[str, Any]], key: bytes | None,
          retention: float | None, on_disk: dict[int, dict[str, Any]]) -> None:
    """Raise PurgeRefused unless the AUDIT_PURGED `event` (chain form) accounts for its range.

    `checkpoints` are those already accepted (signatures checked when there is a key);
    `retention` is the configured AUDIT_RETENTION, used when the record's own value cannot
    be authenticated."""
    seq, data = event["sequence"], event.get("data")
    if not isinstance(data, dict):
        raise PurgeRefused("purge_malformed", f"purge record {seq} has no data")
    through, horizon = data.get("through_sequence"), _time(data.get("horizon"))
    if not isinstance(through, int) or isinstance(through, bool) or not 0 < through < seq \
            or not isinstance(data.get("through_hash"), str) \
            or not _HASH_RE.fullmatch(data["through_hash"]) or horizon is None:
        raise PurgeRefused("purge_malformed", f"purge record {seq} does not name a range before"
                                              " it (through_sequence, through_hash, horizon)")
    signed = False
    if key:
        if not data.get("signature"):
            raise PurgeRefused("purge_unsigned", f"purge record {seq} (through {through}) is not"
                                                 " signed")
        if not signature_ok(data, key):
            raise PurgeRefused("purge_signature", f"purge record {seq} (through {through}) has an"
                                                  " invalid signature")
        signed = True
    own = data.get("retention")
    window = own if signed and isinstance(own, int | float) else retention
    if window is None and isinstance(own, int | float):
        window = own
    received = _time(event.get("received_at"))
    tolerance = timedelta(seconds=CLOCK_TOLERANCE)
    if window is not None and received is not None and \
            horizon > received - timedelta(seconds=window) + tolerance:
        raise PurgeRefused("purge_too_recent", f"purge record {seq} puts its horizon at"
                           f" {data['horizon']}, later than its time minus the retention"
                           f" ({window:g} s)")
    named = data.get("checkpoint")
    named_seq = named.get("sequence") if isinstance(named, dict) else None
    for cp in checkpoints:
        at = _time(cp.get("at"))
        if cp["sequence"] < through and at is not None and at > horizon + tolerance:
            raise PurgeRefused("purge_too_recent", f"purge record {seq} removed events through"
                               f" {through}, but checkpoint {_source(cp)} shows events after"
                               f" {cp['sequence']} were received after {cp['at']}, later than"
                               f" the horizon {data['horizon']}")
        if cp["sequence"] <= through:
            if named_seq is None or cp["sequence"] > named_seq:
                raise PurgeRefused("purge_unnamed_checkpoint", f"purge record {seq} removed"
                                   f" events through {through} covered by checkpoint"
                                   f" {_source(cp)}, which it does not name")
            if cp["sequence"] == named_seq and named.get("digest") != cps.digest(cp):
                raise PurgeRefused("purge_unnamed_checkpoint", f"purge record {seq} names another"
                                   f" checkpoint at {named_seq} than {_source(cp)}")
    copy = on_disk.get(through)
    if copy is not None and copy != data:
        raise PurgeRefused("purge_mismatch", f"purge record {seq} differs from"
                           f" {file_name(through)} in the checkpoint directory")
