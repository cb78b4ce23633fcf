"""Paths and readers for the importer tests' sample files."""

from __future__ import annotations

import os
from pathlib import Path

SAMPLES = Path(__file__).resolve().parent / "samples"
# The real-world export samples (third-party files, with their licences in SOURCES.md there) are
# kept outside the repository: by default in shared/fixtures/exports beside the checkout
# (tests/unit/importers/support.py -> parents[3] is the repository root), or wherever
# WANGXIN_EXPORT_SAMPLES points. A plain clone has neither.
EXPORT_FIXTURES = Path(
    os.environ.get("WANGXIN_EXPORT_SAMPLES")
    or Path(__file__).resolve().parents[3].parent / "shared" / "fixtures" / "exports"
)


def sample_names() -> list[str]:
    """This package's own samples, by file name (dotfiles such as .gitattributes left out)."""
    return sorted(path.name for path in SAMPLES.iterdir() if path.is_file() and not path.name.startswith("."))


def sample_bytes(name: str) -> bytes:
    """Read one of this package's own samples."""
    return (SAMPLES / name).read_bytes()


def real_samples_missing(folder: Path) -> str | None:
    """Say why the layer of tests over the real export samples cannot run, or None if it can.

    Where the folder is absent the caller skips its whole module once, visibly, with this
    reason (on CI too: the README's test command must pass in a plain clone); the own samples
    cover every parser line the real ones reach, so no parser goes untested.
    """
    if folder.is_dir():
        return None
    return (
        f"real export samples not found at {folder} (a plain clone has no shared/ beside it; "
        "set WANGXIN_EXPORT_SAMPLES to run them); the parsers are covered by tests/unit/importers/samples"
    )


def fixture_bytes(relative: str) -> bytes:
    """Read one real export sample (the module reading it is gated by ``real_samples_missing``)."""
    return (EXPORT_FIXTURES / relative).read_bytes()
