"""The outage spool: framing, fsync'd appends, torn tails, damaged segments, bounds, lock."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from exporter.audit.spool import HEADER, Spool, SpoolFull, SpoolLocked, frame, scan


def payload(i: int) -> bytes:
    return json.dumps({"i": i, "accepted_at": "2026-01-01T00:00:00.000000Z"}).encode()


def drain(spool: Spool, batch: int = 3) -> list[int]:
    out = []
    while not spool.empty:
        records, pos = spool.read(batch)
        out.extend(json.loads(r)["i"] for r in records)
        spool.commit(pos, len(records))
    return out


@pytest.fixture
def spool(tmp_path):
    s = Spool(tmp_path / "spool", segment_bytes=400)
    s.open()
    yield s
    s.close()


def test_records_come_back_in_order_across_segments(spool):
    spool.append([payload(i) for i in range(3)])
    for i in range(3, 10):
        spool.append([payload(i)])
    assert spool.pending == 10
    assert len(spool.segments) > 1
    assert drain(spool) == list(range(10))
    assert spool.empty and spool.bytes == 0
    assert list((spool.dir / "segments").iterdir()) == []


def test_pending_survives_reopen_and_the_cursor_skips_drained_records(tmp_path):
    s = Spool(tmp_path / "spool", segment_bytes=10_000)
    s.open()
    s.append([payload(i) for i in range(6)])
    records, pos = s.read(4)
    s.commit(pos, 4)
    s.close()
    again = Spool(tmp_path / "spool")
    report = again.open()
    assert report["pending"] == 2
    assert drain(again) == [4, 5]
    again.close()


def test_a_stale_cursor_only_replays(tmp_path):
    s = Spool(tmp_path / "spool", segment_bytes=10_000)
    s.open()
    s.append([payload(i) for i in range(4)])
    (tmp_path / "spool" / "cursor.json").unlink(missing_ok=True)
    records, pos = s.read(2)
    s.commit(pos, 2)
    (tmp_path / "spool" / "cursor.json").unlink()  # as if the rename never reached the disk
    s.close()
    again = Spool(tmp_path / "spool")
    again.open()
    assert drain(again) == [0, 1, 2, 3]  # replayed: the store de-duplicates by event_id
    again.close()


@pytest.mark.parametrize("tail", [b"\xa5", b"\xa5\x1d\x00\x00", frame(b'{"i": 99}')[:-3],
                                  b"\x00" * 512])
def test_torn_tail_is_truncated_on_open(tmp_path, tail):
    s = Spool(tmp_path / "spool")
    s.open()
    s.append([payload(i) for i in range(3)])
    path = s.segments[-1].path
    good = path.stat().st_size
    s.close()
    with open(path, "ab") as f:
        f.write(tail)
    again = Spool(tmp_path / "spool")
    report = again.open()
    assert report["truncated_bytes"] == len(tail)
    assert path.stat().st_size == good
    assert report["corrupt_segments"] == []
    again.append([payload(3)])
    assert drain(again) == [0, 1, 2, 3]
    again.close()


def test_damaged_segment_is_drained_around_the_damage_then_quarantined(tmp_path):
    s = Spool(tmp_path / "spool", segment_bytes=300)
    s.open()
    for i in range(8):
        s.append([payload(i)])
    first = s.segments[0]
    s.close()
    data = bytearray(first.path.read_bytes())
    records, _, _ = scan(bytes(data))
    offset = records[1][0] + HEADER.size + 3  # inside the second record's payload
    data[offset] ^= 0xFF
    first.path.write_bytes(bytes(data))
    again = Spool(tmp_path / "spool", segment_bytes=300)
    report = again.open()
    assert report["corrupt_segments"] == [first.path.name]
    assert again.quarantined_new == 1
    got = drain(again)
    assert got == [i for i in range(8) if i != 1]
    assert (tmp_path / "spool" / "quarantine" / first.path.name).exists()
    again.close()


def test_bound_gives_a_clear_error_and_writes_nothing(tmp_path):
    s = Spool(tmp_path / "spool", max_bytes=200)
    s.open()
    s.append([payload(0)])
    before = s.bytes
    with pytest.raises(SpoolFull, match="full"):
        s.append([payload(i) for i in range(1, 10)])
    assert s.bytes == before and s.pending == 1
    s.close()


def test_one_process_per_directory(tmp_path):
    s = Spool(tmp_path / "spool")
    s.open()
    with pytest.raises(SpoolLocked, match="in use"):
        Spool(tmp_path / "spool").open()
    s.close()
    other = Spool(tmp_path / "spool")
    other.open()
    other.close()


def test_dead_letter_keeps_the_event_and_the_reason(spool):
    spool.dead_letter(payload(7), "conflict")
    line = json.loads((spool.dir / "dead-letter.jsonl").read_text())
    assert line["reason"] == "conflict" and line["event"]["i"] == 7


def test_oldest_age_follows_the_head(spool):
    assert spool.oldest_age() == 0
    spool.append([payload(0)])
    assert spool.oldest_age() > 0


@given(st.lists(st.binary(min_size=1, max_size=60), min_size=1, max_size=12), st.data())
def test_scan_of_a_cut_stream_yields_a_prefix(payloads, data):
    blob = b"".join(frame(p) for p in payloads)
    cut = data.draw(st.integers(0, len(blob)))
    records, _, bad = scan(blob[:cut])
    got = [p for _, p in records]
    assert got == payloads[:len(got)]
    whole = sum(len(frame(p)) for p in got)
    assert whole <= cut
    if whole < cut:
        assert bad and bad[-1][1] == cut
