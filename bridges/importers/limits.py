"""Size and shape limits applied to every export before and while parsing."""

from __future__ import annotations

import json
import re
from itertools import accumulate
from typing import Any

import attrs

from bridges.importers.errors import ImportFormatError

_positive = [attrs.validators.instance_of(int), attrs.validators.gt(0)]


@attrs.frozen
class ImportLimits:
    """Upper bounds that keep a hostile or accidental file from exhausting the server.

    Exceeding any of them raises ``ImportFormatError`` naming the limit and its value.
    """

    max_bytes: int = attrs.field(default=20 * 1024 * 1024, validator=_positive)
    max_rows: int = attrs.field(default=200_000, validator=_positive)
    max_line_length: int = attrs.field(default=64 * 1024, validator=_positive)
    max_json_depth: int = attrs.field(default=64, validator=_positive)
    max_group_members: int = attrs.field(default=100_000, validator=_positive)


DEFAULT_LIMITS = ImportLimits()


def human_size(size: int) -> str:
    if size >= 1024 * 1024:
        return f"{size / (1024 * 1024):.1f} MiB"
    if size >= 1024:
        return f"{size / 1024:.1f} KiB"
    return f"{size} bytes"


def check_size(data: bytes, limits: ImportLimits) -> None:
    """Reject a file larger than ``max_bytes`` before anything decodes it.

    Args:
        data: The raw file.
        limits: The limits in force.

    Returns:
        None.
    """
    if len(data) > limits.max_bytes:
        raise ImportFormatError(
            f"The file is {human_size(len(data))}, more than the limit "
            f"max_bytes={limits.max_bytes} ({human_size(limits.max_bytes)}). "
            "Export fewer chats or contacts at a time, or ask an administrator to raise the limit."
        )


_LINE_BREAK_RE = re.compile(r"\r\n|\r|\n")


def split_lines(text: str) -> list[str]:
    """Split on CR LF, CR or LF only (``str.splitlines`` also splits on U+2028 and
    form feeds, which would shift line numbers against what editors show).

    Args:
        text: Decoded file content.

    Returns:
        The physical lines without their line breaks.
    """
    return _LINE_BREAK_RE.split(text)


def check_line_lengths(text: str, limits: ImportLimits) -> None:
    """Reject text containing a physical line longer than ``max_line_length`` characters.

    Args:
        text: Decoded file content.
        limits: The limits in force.

    Returns:
        None.
    """
    lines = split_lines(text)
    if not lines or max(map(len, lines)) <= limits.max_line_length:
        return
    for number, line in enumerate(lines, start=1):
        if len(line) > limits.max_line_length:
            raise ImportFormatError(
                f"This line is {len(line)} characters long, more than the limit "
                f"max_line_length={limits.max_line_length}. The file is damaged or is not an export.",
                line=number,
            )


def check_row_count(count: int, limits: ImportLimits, *, line: int | None = None) -> None:
    """Raise once the number of records read so far exceeds ``max_rows``.

    Args:
        count: Records read so far, including the current one.
        limits: The limits in force.
        line: Line of the current record, if the format has lines.

    Returns:
        None.
    """
    if count > limits.max_rows:
        raise ImportFormatError(
            f"The file has more than max_rows={limits.max_rows} records. "
            "Split the export into smaller files, or ask an administrator to raise the limit.",
            line=line,
            record=count,
        )


def check_group_size(name: str, count: int, limits: ImportLimits) -> None:
    """Reject a group with more than ``max_group_members`` members.

    Args:
        name: Group name, for the message.
        count: Number of distinct members found.
        limits: The limits in force.

    Returns:
        None.
    """
    if count > limits.max_group_members:
        raise ImportFormatError(
            f"The group '{name}' has {count} members, more than the limit "
            f"max_group_members={limits.max_group_members}. Ask an administrator to raise the limit."
        )


# A JSON string (escapes included) or one structural bracket. The unrolled
# form keeps the regex linear on long strings.
_STRING = r'"[^"\\]*(?:\\.[^"\\]*)*"'
_STRING_RE = re.compile(_STRING, re.DOTALL)
_NOT_BRACKET_RE = re.compile(r"[^\[\]{}]+")
_TOKEN_RE = re.compile(_STRING + r"|[\[\]{}]", re.DOTALL)
_DELTA = {"[": 1, "{": 1, "]": -1, "}": -1}


def check_json_depth(text: str, limits: ImportLimits) -> None:
    """Reject JSON nested deeper than ``max_json_depth`` without recursing.

    The stdlib decoder recurses once per level, so a file of a hundred
    thousand ``[`` would blow the stack; this scan runs before it.

    Args:
        text: The JSON document text.
        limits: The limits in force.

    Returns:
        None.
    """
    brackets = _NOT_BRACKET_RE.sub("", _STRING_RE.sub("", text))
    if not brackets or max(accumulate(map(_DELTA.__getitem__, brackets))) <= limits.max_json_depth:
        return
    depth = 0
    for match in _TOKEN_RE.finditer(text):
        token = match.group()
        if token in "[{":
            depth += 1
            if depth > limits.max_json_depth:
                raise ImportFormatError(
                    f"The JSON is nested more than max_json_depth={limits.max_json_depth} levels deep. "
                    "Real exports are much flatter; the file is damaged or was made to attack the importer.",
                    line=text.count("\n", 0, match.start()) + 1,
                )
        elif token in "]}":
            depth -= 1


def load_json(text: str, limits: ImportLimits) -> Any:
    """Parse a JSON document after the depth check, mapping every failure to ``ImportFormatError``.

    Args:
        text: The JSON document text.
        limits: The limits in force.

    Returns:
        The decoded document.
    """
    check_json_depth(text, limits)
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        # "Unterminated string" means the text ended inside a string.
        if exc.pos >= len(text.rstrip()) or exc.msg.startswith("Unterminated string"):
            reason = "The JSON ends too early; the file looks cut off. Export it again."
        else:
            reason = f"The file is not valid JSON ({exc.msg}, column {exc.colno})."
        raise ImportFormatError(reason, line=exc.lineno) from None
    except (ValueError, RecursionError) as exc:
        # ValueError: e.g. an integer literal longer than Python's digit limit.
        raise ImportFormatError(f"The JSON could not be read: {exc}.") from None
