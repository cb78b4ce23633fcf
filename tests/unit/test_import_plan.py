"""The import plan: people and groups keyed so that repeated and overlapping imports meet again."""

from __future__ import annotations

import pytest

from bridges.config import parse_config
from bridges.import_plan import build_plan, msisdn, placeholder_name, preview_text
from bridges.importers import Contact, Group, ImportedExport, Member
from wangxin_common.config_errors import ConfigError, Section

EXPORT = ImportedExport(
    format="telegram_json",
    format_label="Telegram Desktop export",
    contacts=(Contact("11", "Na Li", ("+8613912345678",)), Contact("12", "Wei", ())),
    groups=(
        Group("900", "Hikers", (Member("1", "Me"), Member("11", "Na Li"), Member("13", "Zhao", ()),
                                Member("h:abc", "Mum", ()), Member("13", "Zhao again"))),
    ),
    self_source_id="1",
)


def test_people_groups_and_keys() -> None:
    plan = build_plan(EXPORT)
    assert plan.network == "telegram" and plan.self_source_key == "telegram:1"
    (group,) = plan.groups
    assert group.key == "telegram:900"
    # The importer is left out; a member's number comes from the contact list; duplicates merge.
    assert [p.key for p in group.members] == ["tel:+8613912345678", "src:telegram:13", "src:telegram:h:abc"]
    assert group.members[2].source_key is None  # a parser's hash is no id on the network
    assert plan.msisdns() == ["8613912345678"]
    assert msisdn("+8613912345678") == "8613912345678"


def test_counts_follow_the_matches() -> None:
    plan = build_plan(EXPORT)
    nobody = plan.counts({}, "@me:hs")
    assert nobody["matched"] == 0 and nobody["placeholders"] == 3 and nobody["invitable_by_sms"] == 1
    found = plan.counts({"8613912345678": "@na:hs"}, "@me:hs")
    assert found["matched"] == 1 and found["placeholders"] == 2 and found["dm_invitations"] == 1
    assert found["invitable_by_sms"] == 0
    # The importer's own number is no one to invite and no placeholder.
    own = plan.counts({"8613912345678": "@me:hs"}, "@me:hs")
    assert own["matched"] == 0 and own["dm_invitations"] == 0 and own["placeholders"] == 2


def test_same_file_gives_the_same_plan() -> None:
    assert build_plan(EXPORT) == build_plan(EXPORT)


def test_preview_and_placeholder_names() -> None:
    text = preview_text(build_plan(EXPORT), "result.json", {}, "@me:hs")
    assert text.startswith("result.json: Telegram Desktop export.") and "import confirm" in text
    assert placeholder_name(build_plan(EXPORT).groups[0].members[1]) == "Zhao (not on Wangxin yet)"


def _bridge(imports: object) -> dict:
    return {
        "homeserver": {"url": "http://127.0.0.1:8008", "server_name": "hs"},
        "appservice": {"id": "wx", "as_token": "a", "hs_token": "h", "port": 29330},
        "imports": imports,
    }


def test_import_limits_are_configurable_and_checked() -> None:
    config = parse_config(Section(_bridge({"max_bytes": 1000, "max_rows": 10, "default_region": "GB"})))
    assert config.imports.max_bytes == 1000 and config.imports.default_region == "GB"
    with pytest.raises(ConfigError, match="imports.max_rows"):
        parse_config(Section(_bridge({"max_rows": 0})))
    with pytest.raises(ConfigError, match="imports.default_region"):
        parse_config(Section(_bridge({"default_region": "china"})))
    with pytest.raises(ConfigError, match="imports.maxbytes"):
        parse_config(Section(_bridge({"maxbytes": 1})))
