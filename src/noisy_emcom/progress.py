"""Progress as one log line per unit of work, for job logs (tqdm bars are for terminals).

Scripts call `setup_logging()`; library code reports through a `Progress`, which writes at
most one line every `every_s` seconds, and always the last one:

    12:03:41 testchannel: 15/21 settings (71%), 12.5 s, K=256, sample, repetition 0
"""

from __future__ import annotations

import logging
import sys
import time

log = logging.getLogger("noisy_emcom")


def setup_logging() -> None:
    """INFO lines with a time stamp on stderr (the job log under Snakemake)."""
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S", stream=sys.stderr
    )


class Progress:
    """Count `done` of `total` units of `label`; log at most every `every_s` seconds."""

    def __init__(self, label: str, total: int, unit: str = "", every_s: float = 10.0):
        self.label, self.total, self.unit, self.every_s = label, total, unit, every_s
        self.done = 0
        self.start = self.last = time.perf_counter()

    def update(self, n: int = 1, note: str = "") -> None:
        self.done += n
        now = time.perf_counter()
        if self.done >= self.total or now - self.last >= self.every_s:
            self.last = now
            share = 100.0 * self.done / max(self.total, 1)
            extra = f", {note}" if note else ""
            log.info(
                "%s: %d/%d %s (%.0f%%), %.1f s%s",
                self.label, self.done, self.total, self.unit, share, now - self.start, extra,
            )  # fmt: skip
