"""The import plan: people and groups keyed so that repeated and overlapping imports meet again."""

from __future__ import annotations

import pytest

from bridges.config import parse_config
from bridges.contact_import.plan import build_plan, msisdn, placeholder_name, preview_text
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


# -- a file with more numbers than a day's lookups: parts ------------------------------------------


def _phones(start: int, count: int) -> tuple[str, ...]:
    return tuple(f"+86137{n:08d}" for n in range(start, start + count))


PARTS_EXPORT = ImportedExport(
    format="telegram_json",
    format_label="Telegram Desktop export",
    contacts=(Contact("1", "A", _phones(0, 3)), Contact("2", "B", ()), Contact("3", "C", _phones(3, 2)),
              Contact("4", "D", _phones(0, 1))),
    groups=(Group("g1", "G1", (Member("1", "A"), Member("5", "E", _phones(5, 4)))),
            Group("g2", "G2", (Member("6", "F", _phones(9, 1)),))),
)


def test_numbers_are_looked_up_in_file_order_and_parts_are_whole_contacts_and_groups() -> None:
    plan = build_plan(PARTS_EXPORT)
    numbers = plan.numbers_in_order()
    assert numbers == [msisdn(p) for p in _phones(0, 10)]  # contacts first, then group members, once each
    assert sorted(numbers) == plan.msisdns()
    # (contacts, groups) whose numbers are all among the first n looked up: always a prefix.
    assert [plan.ready(n) for n in (0, 2, 3, 4, 5, 8, 9, 10)] == [
        (0, 0), (0, 0), (2, 0), (2, 0), (4, 0), (4, 0), (4, 1), (4, 2)]
    part = plan.part((2, 0), (4, 1))
    assert [c.name for c in part.contacts] == ["C", "D"] and [g.name for g in part.groups] == ["G1"]
    assert part.source_label == plan.source_label and plan.part((0, 0), plan.ready(10)) == plan


def test_numbers_per_contact_are_capped() -> None:
    export = ImportedExport(format="vcard", format_label="vCard 3.0",
                            contacts=(Contact("h:1", "Many", _phones(0, 60)), Contact("h:2", "Two", _phones(60, 2))),
                            groups=(Group("g", "G", (Member("m", "Lots", _phones(100, 30)),)),))
    plan = build_plan(export, max_phones=10)
    assert [len(c.phones) for c in plan.contacts] == [10, 2] and len(plan.groups[0].members[0].phones) == 10
    assert plan.contacts[0].phones == _phones(0, 10)  # the first ones, in file order
    assert plan.capped == 2 and plan.max_phones == 10 and len(plan.numbers_in_order()) == 22
    text = preview_text(plan, "phone.vcf", {}, "@me:hs")
    assert "2 contacts have more than 10 phone numbers; only the first 10 of each are used" in text, text


def test_a_preview_of_a_file_too_big_for_today_says_what_happens_when() -> None:
    from bridges.contact_import.plan import preview_in_parts_text

    plan = build_plan(PARTS_EXPORT)
    text = preview_in_parts_text(plan, "result.json", remaining_today=5, per_day=4, resets_in_ms=3 * 3600 * 1000)
    assert "10 phone numbers" in text and "5 lookups you have left today" in text and "4 a day" in text, text
    assert "the first 4 contacts today" in text and "2 more days" in text and "import confirm" in text, text
    text = preview_in_parts_text(plan, "result.json", remaining_today=0, per_day=4, resets_in_ms=3 * 3600 * 1000)
    assert "no phone-number lookups left today" in text and "in 3 h" in text and "3 days" in text, text
    assert "already on Wangxin" not in text


def test_max_phones_per_contact_is_configurable_and_checked() -> None:
    assert parse_config(Section(_bridge({}))).imports.max_phones_per_contact == 10
    assert parse_config(Section(_bridge({"max_phones_per_contact": 3}))).imports.max_phones_per_contact == 3
    with pytest.raises(ConfigError, match="imports.max_phones_per_contact"):
        parse_config(Section(_bridge({"max_phones_per_contact": 0})))
