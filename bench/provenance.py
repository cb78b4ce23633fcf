"""What a benchmark result needs to be read later: the code it ran, the machine, the command."""

from __future__ import annotations

import os
import shlex
import subprocess
from typing import Any

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def commit(root: str = ROOT) -> str:
    """``git rev-parse --short HEAD``, with ``-dirty`` when the tree has uncommitted changes;
    ``unknown`` outside a git checkout."""
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=root, capture_output=True, text=True,
                              timeout=30, check=True).stdout.strip()
        status = subprocess.run(["git", "status", "--porcelain"], cwd=root, capture_output=True, text=True,
                                timeout=60, check=True).stdout
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return head + ("-dirty" if status.strip() else "")


def cpu_model(cpuinfo: str) -> str | None:
    for line in cpuinfo.splitlines():
        key, _, value = line.partition(":")
        if key.strip() == "model name":
            return value.strip()
    return None


def memory_gib(meminfo: str) -> float | None:
    for line in meminfo.splitlines():
        if line.startswith("MemTotal:"):
            return round(int(line.split()[1]) / 1024 / 1024, 1)
    return None


def cpu_quota(cpu_max: str) -> float | None:
    """Cores the cgroup may use (``/sys/fs/cgroup/cpu.max``: ``max 100000`` or ``200000 100000``)."""
    parts = cpu_max.split()
    if len(parts) != 2 or parts[0] == "max":
        return None
    return round(int(parts[0]) / int(parts[1]), 2)


def _read(path: str) -> str:
    try:
        with open(path, encoding="utf-8") as f:
            return f.read()
    except OSError:
        return ""


def machine() -> dict[str, Any]:
    return {
        "cores": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "cgroup_cpu_quota": cpu_quota(_read("/sys/fs/cgroup/cpu.max")),
        "cpu_model": cpu_model(_read("/proc/cpuinfo")),
        "memory_gib": memory_gib(_read("/proc/meminfo")),
        "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
    }


def command_line(argv: list[str]) -> str:
    return "python3 run.py bench " + " ".join(shlex.quote(a) for a in argv)
