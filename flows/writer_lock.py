"""One writer per DuckDB file: an OS file lock that scheduled flows take before they write.

Why a file lock and not a Prefect concurrency limit: DuckDB's one-writer rule holds per file on
one machine, and the CLI (`resonanz run`, `resonanz collect`) writes without any Prefect server.
A lock beside the file covers every writer on that machine, needs no limit created on a server,
and the OS releases it when a crashed run's process dies, so no slot leaks.
POSIX only (fcntl): Linux and macOS, where the flows run.
"""

from __future__ import annotations

import fcntl
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

POLL_SECONDS = 0.5


class WriterBusy(RuntimeError):
    """Another run holds the warehouse's writer lock longer than we were willing to wait."""


def lock_path(duckdb_path: Path | str) -> Path:
    """Return the lock file that guards a warehouse file."""
    path = Path(duckdb_path)
    return path.with_name(path.name + ".writer.lock")


@contextmanager
def writer_lock(duckdb_path: Path | str, wait_seconds: float = 60.0) -> Iterator[Path]:
    """Hold the warehouse's writer lock; wait up to `wait_seconds`, then raise WriterBusy."""
    path = lock_path(duckdb_path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        deadline = time.monotonic() + wait_seconds
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    holder = _holder(fd)
                    raise WriterBusy(
                        f"{duckdb_path} is being written by another run{holder}; waited {wait_seconds:.0f} s"
                    ) from None
                time.sleep(POLL_SECONDS)
        os.ftruncate(fd, 0)
        os.write(fd, str(os.getpid()).encode())
        try:
            yield path
        finally:
            os.ftruncate(fd, 0)
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


def _holder(fd: int) -> str:
    try:
        pid = os.pread(fd, 32, 0).decode().strip()
    except OSError:
        return ""
    return f" (pid {pid})" if pid else ""
