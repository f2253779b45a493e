"""Atomic file writes shared by training, tests, ETL and the report (no JAX imported).

A file is written under a temporary name `.<name>.<pid>.<random>.tmp` in its own folder,
flushed to disk, given the umask's usual mode and renamed over its final name: a reader sees
the old file or the whole new one, never part of one. Temporary files of a killed writer are
removed by the next write to the same name (`remove_stale_temps`).
"""

from __future__ import annotations

import glob
import os
import tempfile
from collections.abc import Callable
from pathlib import Path


class WriteError(OSError):
    """A failed write (full disk, size limit); the message names the file."""

    def __str__(self) -> str:
        return str(self.strerror)


def _umask() -> int:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)  # no portable read-only query elsewhere
    os.umask(mask)
    return mask


def _writer_alive(tmp_name: str) -> bool:
    """Whether the process that made temporary file `.<name>.<pid>.<random>.tmp` still runs."""
    parts = tmp_name[: -len(".tmp")].rsplit(".", 2)
    if len(parts) != 3 or not parts[1].isdigit():
        return False  # an older temporary name without a pid
    pid = int(parts[1])
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def remove_stale_temps(folder: str | Path, pattern: str = ".*.tmp") -> list[Path]:
    """Delete temporary files matching `pattern` in `folder` whose writer no longer runs
    (left by a kill during a write) → the deleted paths."""
    removed = []
    for tmp in Path(folder).glob(pattern):
        if tmp.is_file() and not _writer_alive(tmp.name):
            tmp.unlink(missing_ok=True)
            removed.append(tmp)
    return removed


def atomic_write(path: str | Path, write: Callable[[Path], None]) -> Path:
    """Call `write(tmp)` on a temporary file beside `path`, fsync it, rename it to `path`.

    The file gets the umask's usual mode (0644 under umask 022). A failed write (full disk,
    size limit) removes the temporary file, leaves `path` as it was and raises WriteError (an
    OSError) naming `path`. → `path`."""
    path = Path(path)
    tmp = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        remove_stale_temps(path.parent, f".{glob.escape(path.name)}.*.tmp")
        fd, name = tempfile.mkstemp(
            prefix=f".{path.name}.{os.getpid()}.", suffix=".tmp", dir=path.parent
        )
        tmp = Path(name)
        try:
            os.fchmod(fd, 0o666 & ~_umask())
        finally:
            os.close(fd)
        write(tmp)
        fd = os.open(tmp, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except OSError as err:
        if tmp is not None:
            tmp.unlink(missing_ok=True)
        raise WriteError(err.errno, f"cannot write {path}: {err.strerror or err}") from err
    except BaseException:
        if tmp is not None:
            tmp.unlink(missing_ok=True)
        raise
    return path


def atomic_write_bytes(path: str | Path, data: bytes) -> Path:
    """`atomic_write` of the bytes `data`."""
    return atomic_write(path, lambda p: p.write_bytes(data))


def atomic_write_text(path: str | Path, text: str) -> Path:
    """`atomic_write` of `text` in UTF-8."""
    return atomic_write(path, lambda p: p.write_text(text, encoding="utf-8"))
