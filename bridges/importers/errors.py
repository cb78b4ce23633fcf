"""The single error type raised by every importer for input it cannot use."""

from __future__ import annotations


def describe_location(line: int | None, record: int | None) -> str:
    """Format where in a file something happened.

    Args:
        line: 1-based line number in the file, if known.
        record: 1-based number of the record (card, row, chat, message), if known.

    Returns:
        "line 12", "record 3", "line 12 (record 3)" or "" when neither is known.
    """
    if line is not None and record is not None:
        return f"line {line} (record {record})"
    if line is not None:
        return f"line {line}"
    if record is not None:
        return f"record {record}"
    return ""


class ImportFormatError(Exception):
    """An export file that cannot be imported.

    Raised for anything wrong with the input: unsupported format, truncated or
    binary content, wrong text encoding, hostile structure or an exceeded
    ``ImportLimits`` value. ``reason`` is a plain English sentence meant to be
    shown to the person importing, saying what is wrong and what to do.
    """

    def __init__(self, reason: str, *, line: int | None = None, record: int | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.line = line
        self.record = record

    def __str__(self) -> str:
        where = describe_location(self.line, self.record)
        return f"{where}: {self.reason}" if where else self.reason

    def __reduce__(self) -> tuple[object, ...]:
        # Keep line/record when the error crosses a process boundary (pickling
        # only replays ``args`` by default).
        return (_rebuild_error, (self.reason, self.line, self.record))


def _rebuild_error(reason: str, line: int | None, record: int | None) -> ImportFormatError:
    return ImportFormatError(reason, line=line, record=record)
