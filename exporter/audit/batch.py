"""Planning an append: de-duplication, conflicts, sequences and hashes — store-agnostic.

Both stores call `plan_append` under their chain lock, with the head and the stored digests
of the batch's event_ids, then insert exactly the rows it returns. Only rows really
inserted get a sequence and a hash, which is why this is not a database trigger.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .chain import link_hash
from .errors import AuditConflict
from .events import PendingEvent


@dataclass(frozen=True)
class Row:
    """A new link of the chain, ready to insert."""

    sequence: int
    event_id: str
    event_type: str
    timestamp: str
    received_at: str
    accepted_at: str
    symbol: str | None
    actor: str | None
    data: dict | None
    prev_hash: bytes
    hash: bytes
    digest: bytes

    def view(self) -> dict[str, Any]:
        """The API form of this event."""
        return row_view(self.__dict__)


def row_view(row: dict[str, Any]) -> dict[str, Any]:
    """The API/export form of a stored event: hashes in lowercase hex."""
    return {
        "sequence": row["sequence"], "event_id": row["event_id"],
        "event_type": row["event_type"], "timestamp": row["timestamp"],
        "received_at": row["received_at"], "accepted_at": row["accepted_at"],
        "symbol": row["symbol"], "actor": row["actor"], "data": row["data"],
        "prev_hash": row["prev_hash"].hex(), "hash": row["hash"].hex(),
    }


@dataclass
class Plan:
    """What to insert, and per unit either [(outcome, row or stored sequence)] or a conflict."""

    rows: list[Row] = field(default_factory=list)
    units: list[list[tuple[str, Row | int]] | AuditConflict] = field(default_factory=list)
    head: tuple[int, bytes] = (0, bytes(32))

    def duplicate_sequences(self) -> set[int]:
        """Stored sequences the caller must fetch to answer duplicates."""
        out = set()
        for unit in self.units:
            if isinstance(unit, list):
                out.update(ref for outcome, ref in unit if isinstance(ref, int))
        return out


def plan_append(
    units: list[list[PendingEvent]],
    existing: dict[str, tuple[int, bytes]],
    head: tuple[int, bytes],
    received_at: str,
) -> Plan:
    """Decide, unit by unit, which events are new, duplicates, or conflicts (unit refused)."""
    plan = Plan()
    sequence, prev = head
    fresh: dict[str, Row] = {}
    for unit in units:
        outcomes: list[tuple[str, Row | int]] = []
        new_rows: list[Row] = []
        local: dict[str, Row] = {}
        conflict: AuditConflict | None = None
        for index, event in enumerate(unit):
            known = existing.get(event.event_id)
            earlier = fresh.get(event.event_id) or local.get(event.event_id)
            if known is not None:
                if known[1] != event.digest:
                    conflict = AuditConflict(event.event_id, _field(unit, index))
                    break
                outcomes.append(("duplicate", known[0]))
            elif earlier is not None:
                if earlier.digest != event.digest:
                    conflict = AuditConflict(event.event_id, _field(unit, index))
                    break
                outcomes.append(("duplicate", earlier))
            else:
                row = _link(event, sequence + len(new_rows) + 1,
                            new_rows[-1].hash if new_rows else prev, received_at)
                new_rows.append(row)
                local[event.event_id] = row
                outcomes.append(("stored", row))
        if conflict is not None:
            plan.units.append(conflict)
            continue
        plan.rows.extend(new_rows)
        fresh.update(local)
        if new_rows:
            sequence, prev = new_rows[-1].sequence, new_rows[-1].hash
        plan.units.append(outcomes)
    plan.head = (sequence, prev)
    return plan


def _field(unit: list[PendingEvent], index: int) -> str:
    return f"events[{index}].event_id" if len(unit) > 1 else "event_id"


def _link(event: PendingEvent, sequence: int, prev: bytes, received_at: str) -> Row:
    digest = link_hash(prev, sequence=sequence, event_id=event.event_id,
                       event_type=event.event_type, timestamp=event.timestamp,
                       received_at=received_at, symbol=event.symbol, actor=event.actor,
                       data_json=event.data_json)
    return Row(
        sequence=sequence, event_id=event.event_id, event_type=event.event_type,
        timestamp=event.timestamp, received_at=received_at, accepted_at=event.accepted_at,
        symbol=event.symbol, actor=event.actor, data=event.data, prev_hash=prev,
        hash=digest, digest=event.digest,
    )


def resolve(plan: Plan, stored: dict[int, dict[str, Any]]) -> list[list[tuple[str, dict]] | AuditConflict]:
    """Turn a plan into per-unit answers, with stored events for duplicates."""
    out: list[list[tuple[str, dict]] | AuditConflict] = []
    for unit in plan.units:
        if isinstance(unit, AuditConflict):
            out.append(unit)
            continue
        answers = []
        for outcome, ref in unit:
            answers.append((outcome, stored[ref] if isinstance(ref, int) else ref.view()))
        out.append(answers)
    return out
