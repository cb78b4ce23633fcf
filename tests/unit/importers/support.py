"""Paths and readers for the importer tests' sample files."""

from __future__ import annotations

from pathlib import Path

import pytest

SAMPLES = Path(__file__).resolve().parent / "samples"
# /work/main/tests/unit/importers/conftest.py -> parents[3] is the repository
# root; the shared, read-only export fixtures live next to it.
EXPORT_FIXTURES = Path(__file__).resolve().parents[3].parent / "shared" / "fixtures" / "exports"


def fixture_bytes(relative: str) -> bytes:
    """Read one shared export fixture; a missing tree fails the test (never a silent skip)."""
    path = EXPORT_FIXTURES / relative
    if not EXPORT_FIXTURES.is_dir():
        pytest.fail(f"shared export fixtures not found at {EXPORT_FIXTURES} (shared/ sits beside the repo)")
    return path.read_bytes()


def sample_bytes(name: str) -> bytes:
    """Read one of this package's own samples."""
    return (SAMPLES / name).read_bytes()
