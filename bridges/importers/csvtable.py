"""Reading a CSV export into header + rows with line numbers, under the import limits."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator

import attrs

from bridges.importers.errors import ImportFormatError
from bridges.importers.limits import ImportLimits, check_row_count


@attrs.frozen
class CsvRow:
    """One data row: where it starts and its cells keyed by header name."""

    line: int
    record: int
    cells: dict[str, str]

    def get(self, column: str) -> str:
        """Return a cell, or "" when the row has no such column.

        Args:
            column: Header name.

        Returns:
            The stripped cell text.
        """
        return self.cells.get(column, "").strip()


def _delimiter(first_line: str) -> str:
    # Outlook's "Unicode CSV" is tab-separated and continental Excel uses ';'.
    counts = {sep: first_line.count(sep) for sep in (",", "\t", ";")}
    best = max(counts, key=lambda sep: counts[sep])
    return best if counts[best] > counts[","] else ","


def read_header(text: str) -> list[str]:
    """Read just the header names of a CSV text.

    Args:
        text: Decoded CSV (or anything; non-CSV yields a meaningless list).

    Returns:
        Header names, stripped, possibly empty.
    """
    stripped = text.lstrip("\ufeff\r\n")
    first_line = stripped.split("\n", 1)[0]
    try:
        header = next(csv.reader([first_line], delimiter=_delimiter(first_line)), [])
    except csv.Error:
        return []
    return [name.strip().lstrip("\ufeff") for name in header]


def iter_rows(text: str, limits: ImportLimits) -> tuple[list[str], Iterator[CsvRow]]:
    """Split CSV text into its header and a lazy iterator of rows.

    Blank rows are skipped. The iterator raises ``ImportFormatError`` for
    malformed CSV and once ``max_rows`` is exceeded.

    Args:
        text: Decoded CSV text (line lengths already checked).
        limits: The limits in force.

    Returns:
        (header names, row iterator).
    """
    body = text.lstrip("\ufeff")
    first_line = body.lstrip("\r\n").split("\n", 1)[0]
    reader = csv.reader(io.StringIO(body, newline=""), delimiter=_delimiter(first_line), strict=False)
    try:
        header: list[str] = []
        while not any(cell.strip() for cell in header):
            header = next(reader)
    except StopIteration:
        raise ImportFormatError("The CSV file has no header row.") from None
    except csv.Error as exc:
        raise ImportFormatError(f"The CSV header cannot be read ({exc}).", line=reader.line_num) from None
    names = [name.strip().lstrip("\ufeff") for name in header]

    def rows() -> Iterator[CsvRow]:
        record = 0
        previous_end = reader.line_num
        while True:
            start = previous_end + 1
            try:
                cells = next(reader)
            except StopIteration:
                return
            except csv.Error as exc:
                raise ImportFormatError(
                    f"This CSV row cannot be read ({exc}); the file is damaged.", line=start
                ) from None
            previous_end = reader.line_num
            if not any(cell.strip() for cell in cells):
                continue
            record += 1
            check_row_count(record, limits, line=start)
            # Short rows leave trailing columns empty; extra cells are dropped.
            yield CsvRow(start, record, dict(zip(names, cells, strict=False)))

    return names, rows()
