"""Stop a Snakemake job whose Snakemake process is gone.

Snakemake runs each job as `bash -c "...; python ..."`. When Snakemake itself is killed
(SIGKILL, the out-of-memory killer), bash and python are orphaned and would go on writing the
outputs that a rerun (`--rerun-incomplete`) writes too. Parent-death signals do not help (the
parent is bash, which survives), so a daemon thread polls the nearest Snakemake ancestor and
sends SIGTERM to this process once it is gone: the training loops then write a checkpoint and
exit with status 143. On SIGTERM or SIGINT Snakemake itself stays alive until its running jobs
end, so they finish normally. Linux only (`/proc`); elsewhere nothing is watched.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path


def _stat(pid: int) -> tuple[str, int, int] | None:
    """(state, parent pid, start time) of a process, None when it does not exist."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = text.rsplit(")", 1)[1].split()  # after "pid (comm)"
    return fields[0], int(fields[1]), int(fields[19])


def _is_snakemake(pid: int) -> bool:
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[:3]
    except OSError:
        return False
    names = [os.path.basename(a.decode(errors="replace")) for a in argv]
    return "snakemake" in names


def snakemake_ancestor() -> tuple[int, int] | None:
    """(pid, start time) of the nearest ancestor process running Snakemake, if any."""
    pid = os.getppid()
    while pid > 1:
        stat = _stat(pid)
        if stat is None:
            return None
        if _is_snakemake(pid):
            return pid, stat[2]
        pid = stat[1]
    return None


def alive(pid: int, start: int) -> bool:
    stat = _stat(pid)
    return stat is not None and stat[2] == start and stat[0] not in ("Z", "X")


def watch_snakemake(interval: float = 1.0) -> threading.Thread | None:
    """When run by Snakemake: a daemon thread that sends SIGTERM to this process once that
    Snakemake process has died. None when there is no Snakemake ancestor."""
    found = snakemake_ancestor()
    if found is None:
        return None

    def poll():
        while alive(*found):
            time.sleep(interval)
        os.kill(os.getpid(), signal.SIGTERM)

    thread = threading.Thread(target=poll, name="snakemake-lifeline", daemon=True)
    thread.start()
    return thread
