"""bench/synthetic_export.py produces what parse_export reads back."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

from bridges.importers import parse_export

SCRIPT = Path(__file__).resolve().parents[3] / "bench" / "synthetic_export.py"


def _load() -> ModuleType:
    # bench/ is a folder of scripts, not a package.
    spec = importlib.util.spec_from_file_location("synthetic_export", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


synthetic = _load()


@pytest.mark.parametrize(("contacts", "groups"), [(200, 12), (50, 0), (1, 1)])
def test_counts_round_trip(contacts: int, groups: int) -> None:
    data, stats = synthetic.export_bytes(contacts=contacts, groups=groups)
    result = parse_export(data, "result.json")
    assert result.format == "telegram_json"
    assert len(result.contacts) == stats.contacts == contacts
    assert len(result.groups) == stats.groups == groups
    assert result.membership_count == stats.memberships
    assert all(len(contact.phones) == 1 for contact in result.contacts)
    assert all(phone.startswith("+861") for contact in result.contacts for phone in contact.phones)
    assert result.self_source_id == str(synthetic.SELF_ID)
    assert result.warnings == ()


def test_default_shape_ratio() -> None:
    document, stats = synthetic.build_export(contacts=500, groups=30)
    # 3 memberships per contact by default, as in the 5,000 / 300 / 15,000 benchmark.
    assert stats.memberships == 1500
    assert len(document["contacts"]["list"]) == 500


def test_deterministic() -> None:
    assert synthetic.export_bytes(100, 5)[0] == synthetic.export_bytes(100, 5)[0]
    assert synthetic.export_bytes(100, 5, seed=1)[0] != synthetic.export_bytes(100, 5, seed=2)[0]


def test_command_line(tmp_path: Path) -> None:
    out = tmp_path / "result.json"
    completed = subprocess.run(
        [sys.executable, str(SCRIPT), "--contacts", "120", "--groups", "8", "--memberships", "300",
         "--out", str(out)],
        capture_output=True, text=True, check=True, timeout=60,
    )
    assert "120 contacts, 8 groups, 300 memberships" in completed.stderr
    result = parse_export(out.read_bytes(), out.name)
    assert (len(result.contacts), len(result.groups), result.membership_count) == (120, 8, 300)


def test_impossible_memberships_are_refused() -> None:
    with pytest.raises(ValueError):
        synthetic.build_export(contacts=3, groups=2, memberships=100)
