"""Synapse's processes of a running stack: their memory and CPU, read from ``/proc``."""

from __future__ import annotations

import os
import statistics
import threading
from typing import Any


def synapse_pids(stack: Any) -> list[int]:
    """The main process and every worker."""
    return [pid for name, pid in stack.info["processes"].items() if name == "synapse" or name.startswith("synapse-")]


def rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status", encoding="ascii") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def cpu_s(pids: list[int]) -> float:
    """User + system CPU seconds the processes have used (on SQLite the database's work too: it
    runs in Synapse's threads; PostgreSQL's own processes are not counted)."""
    total = 0
    for pid in pids:
        with open(f"/proc/{pid}/stat", encoding="ascii") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        total += int(fields[11]) + int(fields[12])
    return total / os.sysconf("SC_CLK_TCK")


class RssSampler(threading.Thread):
    """Synapse's RSS (all its processes together) once a second."""

    def __init__(self, pids: list[int]):
        super().__init__(daemon=True)
        self.pids = pids
        self.samples: list[float] = []
        self.stop = threading.Event()

    def now(self) -> float:
        return round(sum(rss_mb(p) for p in self.pids), 1)

    def run(self) -> None:
        while not self.stop.wait(1.0):
            self.samples.append(self.now())

    def report(self, start: float, end: float) -> dict[str, Any]:
        tenth = max(1, len(self.samples) // 10)
        return {
            "at_start": start, "at_end": end, "growth": round(end - start, 1),
            "max": max(self.samples, default=end),
            "first_tenth_mean": round(statistics.fmean(self.samples[:tenth]), 1) if self.samples else None,
            "last_tenth_mean": round(statistics.fmean(self.samples[-tenth:]), 1) if self.samples else None,
            "samples": len(self.samples),
            # at the start, after each tenth of the samples, and at the end: whether it levels off
            "trace": [start] + [self.samples[min(len(self.samples) - 1, len(self.samples) * k // 10)]
                                for k in range(1, 10)] + [end] if self.samples else [start, end],
        }
