"""Errors of Wangxin code in Synapse's logs, found per test.

A module error that a client never sees (a background process that lost its log context, a
repair loop that gave up) only shows in Synapse's log. The harness remembers where each Synapse
process's log ended when a test started, and afterwards reads what the test added: an ERROR (or
CRITICAL) record, a traceback, or a broken log-context rule (Synapse reports those as warnings)
that names Wangxin code fails the test.
"""

from __future__ import annotations

import glob
import os
import re
from collections.abc import Iterable

# A record starts with the stack's log format ("%(asctime)s - %(name)s - %(lineno)d -
# %(levelname)s - ..."); lines that do not (tracebacks, stack_info) belong to the record above.
_RECORD_START = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d+ - (?P<name>\S+) - \d+ - (?P<level>[A-Z]+) - ")
# Wangxin's code in Synapse: the modules' package (logger names, traceback paths) and the names
# its background processes and database transactions carry.
WANGXIN_CODE = re.compile(r"synapse_modules|wangxin_")
EXCERPT_CHARS = 4000


def synapse_logs(logs_dir: str) -> list[str]:
    """The main process's and every worker's log (``synapse.log``, ``synapse-<worker>.log``)."""
    return sorted(glob.glob(os.path.join(logs_dir, "synapse.log")) + glob.glob(os.path.join(logs_dir, "synapse-*.log")))


def log_sizes(paths: Iterable[str]) -> dict[str, int]:
    sizes = {}
    for path in paths:
        try:
            sizes[path] = os.path.getsize(path)
        except FileNotFoundError:
            sizes[path] = 0
    return sizes


def read_from(path: str, offset: int) -> str:
    try:
        with open(path, "rb") as f:
            f.seek(offset)
            return f.read().decode("utf-8", "replace")
    except FileNotFoundError:
        return ""


def records(text: str) -> list[str]:
    """The log records of ``text``, each with its continuation lines."""
    found: list[str] = []
    current: list[str] = []
    for line in text.splitlines():
        if _RECORD_START.match(line) and current:
            found.append("\n".join(current))
            current = []
        current.append(line)
    if current:
        found.append("\n".join(current))
    return found


def is_wangxin_error(record: str) -> bool:
    match = _RECORD_START.match(record)
    level = match["level"] if match else None
    failed = (
        level in ("ERROR", "CRITICAL")
        or "Traceback (most recent call last)" in record
        # "Expected logging context X but found Y", "... was lost", and work started in the
        # sentinel context ("Starting db txn ... from sentinel context"): warnings in Synapse's
        # log, mistakes in the code that caused them.
        or (level == "WARNING" and (match["name"] == "synapse.logging.context" or "sentinel context" in record))
    )
    return failed and WANGXIN_CODE.search(record) is not None


def wangxin_errors(text: str) -> list[str]:
    return [r for r in records(text) if is_wangxin_error(r)]


def new_wangxin_errors(start: dict[str, int]) -> dict[str, list[str]]:
    """Per log file, the Wangxin errors written after the offsets in ``start``."""
    problems = {}
    for path, offset in start.items():
        errors = wangxin_errors(read_from(path, offset))
        if errors:
            problems[path] = errors
    return problems


def describe(problems: dict[str, list[str]]) -> str:
    parts = []
    for path, errors in problems.items():
        parts.append(f"{path}: {len(errors)} error(s) of Wangxin code")
        parts.extend(errors)
    text = "\n".join(parts)
    if len(text) > EXCERPT_CHARS:
        text = text[:EXCERPT_CHARS] + f"\n… ({len(text) - EXCERPT_CHARS} more characters in the logs)"
    return text
