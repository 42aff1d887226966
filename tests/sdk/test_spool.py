"""The disk spool: atomic files, oldest-first order, the byte bound, and the replay lock."""

from __future__ import annotations

import gzip
import os
import time
from pathlib import Path

from monitor.sdk.spool import Spool


def _body(tag: str, size: int = 100) -> bytes:
    # Random-ish bytes so gzip cannot shrink them: sizes on disk are then predictable.
    return gzip.compress(tag.encode() + os.urandom(size), mtime=0)


def test_write_then_read_oldest_first(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "s", max_bytes=1 << 20)
    bodies = [_body(f"b{i}") for i in range(5)]
    for i, body in enumerate(bodies):
        assert spool.write("events" if i % 2 == 0 else "feedback", body, items=i + 1) == 0
    entries = spool.entries()
    assert [e.items for e in entries] == [1, 2, 3, 4, 5]
    assert [e.kind for e in entries] == ["events", "feedback", "events", "feedback", "events"]
    assert [spool.read(e) for e in entries] == bodies
    spool.remove(entries[0])
    assert [e.items for e in spool.entries()] == [2, 3, 4, 5]


def test_temp_and_foreign_files_are_never_read(tmp_path: Path) -> None:
    spool = Spool(tmp_path, max_bytes=1 << 20)
    spool.write("events", _body("real"), items=1)
    (tmp_path / ".tmp-999-1").write_bytes(b"half a wri")  # a crashed writer's leftover
    (tmp_path / "notes.txt").write_text("hello")
    (tmp_path / "1-2-3.events.x.json.gz").write_bytes(b"bad name")
    assert [e.items for e in spool.entries()] == [1]


def test_stale_temp_files_are_cleaned_fresh_ones_kept(tmp_path: Path) -> None:
    spool = Spool(tmp_path, max_bytes=1 << 20)
    old, fresh = tmp_path / ".tmp-1-1", tmp_path / ".tmp-2-2"
    old.write_bytes(b"x")
    fresh.write_bytes(b"y")
    two_hours_ago = time.time() - 7200
    os.utime(old, (two_hours_ago, two_hours_ago))
    assert spool.clean_stale_temp_files() == 1
    assert not old.exists() and fresh.exists()


def test_bound_evicts_oldest_and_reports_items(tmp_path: Path) -> None:
    body = _body("x", 1000)
    spool = Spool(tmp_path, max_bytes=len(body) * 3)
    evicted = [spool.write("events", body, items=10 + i) for i in range(5)]
    assert evicted == [0, 0, 0, 10, 11]
    assert [e.items for e in spool.entries()] == [12, 13, 14]
    assert sum(e.size for e in spool.entries()) <= spool.max_bytes


def test_body_larger_than_the_whole_spool_is_not_written(tmp_path: Path) -> None:
    spool = Spool(tmp_path, max_bytes=50)
    assert spool.write("events", _body("x", 500), items=9) == 9
    assert spool.entries() == []


def test_damaged_file_is_dropped_not_sent(tmp_path: Path) -> None:
    spool = Spool(tmp_path, max_bytes=1 << 20)
    spool.write("events", _body("ok"), items=1)
    entry = spool.entries()[0]
    entry.path.write_bytes(b"\x1f\x8b garbage")  # disk damage (our own writes are atomic)
    assert spool.read(entry) is None
    assert spool.entries() == []


def test_vanished_file_reads_as_none(tmp_path: Path) -> None:
    spool = Spool(tmp_path, max_bytes=1 << 20)
    spool.write("events", _body("ok"), items=1)
    entry = spool.entries()[0]
    entry.path.unlink()  # another process replayed it
    assert spool.read(entry) is None


def test_replay_lock_is_exclusive_between_spools_sharing_a_directory(tmp_path: Path) -> None:
    first, second = Spool(tmp_path, 1 << 20), Spool(tmp_path, 1 << 20)
    with first.replay_lock() as got_first:
        assert got_first
        with second.replay_lock() as got_second:
            assert not got_second
    with second.replay_lock() as got_second_later:
        assert got_second_later


def test_two_writers_in_one_directory_never_collide(tmp_path: Path) -> None:
    a, b = Spool(tmp_path, 1 << 22), Spool(tmp_path, 1 << 22)
    for i in range(20):
        a.write("events", _body(f"a{i}"), items=1)
        b.write("events", _body(f"b{i}"), items=1)
    entries = Spool(tmp_path, 1 << 22).entries()
    assert len(entries) == 40
    assert len({e.path.name for e in entries}) == 40
    assert [f for f in os.listdir(tmp_path) if f.startswith(".tmp")] == []
