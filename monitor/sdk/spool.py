"""A bounded on-disk queue of request bodies the collector could not take yet.

One gzipped request body per file, written atomically (temp file + fsync + `os.replace` + directory
fsync), so a reader never sees half a file even if the writer crashed mid-write. Names sort
oldest-first and carry the item kind and count, so replay and eviction need no index file. Files
are only ever created whole or deleted, never rewritten: two processes sharing a directory cannot
corrupt each other. They could still both send the same file; an advisory lock held while replaying
keeps that rare, and the collector's idempotency makes it harmless when it happens.
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import os
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Final

try:  # POSIX; on other systems replay runs unlocked (still safe, see module docstring)
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

_SUFFIX: Final = ".json.gz"
_TMP_PREFIX: Final = ".tmp-"
_LOCK_NAME: Final = ".replay.lock"
# A temp file this old belongs to a writer that died mid-write; anything younger may still be in use.
_STALE_TMP_SECONDS: Final = 3600.0


def default_spool_dir(url: str, api_key: str) -> Path:
    """Per-user cache dir, one subdirectory per (collector, key) so a spool is never sent with another key.

    Only a hash of the key is used in the path.
    """
    if sys.platform == "win32":  # pragma: no cover - not exercised on the Linux CI
        base = Path(os.environ.get("LOCALAPPDATA") or Path.home() / "AppData" / "Local")
    else:
        base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    digest = hashlib.sha256(f"{url}\n{api_key}".encode()).hexdigest()[:16]
    return base / "driftloop" / "spool" / digest


@dataclass(frozen=True)
class SpoolEntry:
    path: Path
    kind: str
    items: int
    size: int


def _parse_name(name: str) -> tuple[str, int] | None:
    """`<time_ns>-<pid>-<random>.<kind>.<items>.json.gz` -> (kind, items); None for anything else."""
    if name.startswith(".") or not name.endswith(_SUFFIX):
        return None
    parts = name[: -len(_SUFFIX)].split(".")
    if len(parts) != 3 or not parts[2].isdigit():
        return None
    return parts[1], int(parts[2])


class Spool:
    """Files of gzipped request bodies in `directory`, at most `max_bytes` in total."""

    def __init__(self, directory: str | os.PathLike[str], max_bytes: int) -> None:
        self.directory = Path(directory)
        self.max_bytes = max_bytes
        self._lock_fd: int | None = None

    def entries(self) -> list[SpoolEntry]:
        """Complete spool files, oldest first. Vanished files (another process replayed them) are skipped."""
        found: list[SpoolEntry] = []
        try:
            with os.scandir(self.directory) as it:
                for entry in it:
                    parsed = _parse_name(entry.name)
                    if parsed is None:
                        continue
                    try:
                        size = entry.stat().st_size
                    except FileNotFoundError:
                        continue
                    found.append(SpoolEntry(Path(entry.path), parsed[0], parsed[1], size))
        except FileNotFoundError:
            return []
        found.sort(key=lambda e: e.path.name)
        return found

    def write(self, kind: str, gz_body: bytes, items: int) -> int:
        """Store one gzipped body; returns how many *items* were evicted (oldest files first) to stay bounded.

        If the body alone is larger than the whole spool it is not written and its own items are returned
        as evicted. Raises OSError when the disk refuses (the caller counts the batch as lost).
        """
        if len(gz_body) > self.max_bytes:
            return items
        self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)  # bodies hold prompts: owner only
        evicted = self._evict_for(len(gz_body))
        # Unique even across processes and across Spool objects of one process sharing the directory;
        # the time prefix makes names sort oldest-first.
        name = f"{time.time_ns():020d}-{os.getpid()}-{os.urandom(6).hex()}.{kind}.{items}{_SUFFIX}"
        fd, tmp_name = tempfile.mkstemp(prefix=_TMP_PREFIX, dir=self.directory)
        tmp = Path(tmp_name)
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(gz_body)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, self.directory / name)
        except BaseException:
            with contextlib.suppress(OSError):
                tmp.unlink()
            raise
        self._fsync_directory()
        return evicted

    def _evict_for(self, incoming: int) -> int:
        entries = self.entries()
        total = sum(e.size for e in entries)
        evicted = 0
        for entry in entries:
            if total + incoming <= self.max_bytes:
                break
            try:
                entry.path.unlink()
                evicted += entry.items
            except FileNotFoundError:
                pass  # replayed meanwhile by someone else: not lost
            total -= entry.size
        return evicted

    def _fsync_directory(self) -> None:
        # Makes the rename itself durable; not possible (nor needed) on every platform.
        try:
            fd = os.open(self.directory, os.O_RDONLY)
        except OSError:
            return
        try:
            os.fsync(fd)
        except OSError:
            pass
        finally:
            os.close(fd)

    def read(self, entry: SpoolEntry) -> bytes | None:
        """The gzipped body, checked to decompress; None if the file vanished or is damaged (then removed)."""
        try:
            data = entry.path.read_bytes()
        except FileNotFoundError:
            return None
        try:
            gzip.decompress(data)
        except (OSError, EOFError, ValueError):
            self.remove(entry)  # only disk damage gets here: atomic writes never leave a partial file
            return None
        return data

    def remove(self, entry: SpoolEntry) -> None:
        with contextlib.suppress(FileNotFoundError):
            entry.path.unlink()

    def clean_stale_temp_files(self, now: float | None = None) -> int:
        """Delete temp files left by writers that crashed long ago; returns how many."""
        now = time.time() if now is None else now
        removed = 0
        try:
            with os.scandir(self.directory) as it:
                for entry in it:
                    if not entry.name.startswith(_TMP_PREFIX):
                        continue
                    with contextlib.suppress(FileNotFoundError):
                        if now - entry.stat().st_mtime > _STALE_TMP_SECONDS:
                            os.unlink(entry.path)
                            removed += 1
        except FileNotFoundError:
            pass
        return removed

    @contextlib.contextmanager
    def replay_lock(self) -> Iterator[bool]:
        """Try (without blocking) to become the one process replaying this directory; yields success."""
        if fcntl is None:  # pragma: no cover - Windows
            yield True
            return
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.directory / _LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o600)
        except OSError:
            yield True  # an unlockable directory still works; duplicates are harmless
            return
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            yield False
            return
        self._lock_fd = fd
        try:
            yield True
        finally:
            self._lock_fd = None
            os.close(fd)  # closing the descriptor releases the flock

    def forget_inherited_lock(self) -> None:
        """In a forked child: close the parent's lock descriptor, which would otherwise keep the lock held."""
        fd, self._lock_fd = self._lock_fd, None
        if fd is not None:
            with contextlib.suppress(OSError):
                os.close(fd)
