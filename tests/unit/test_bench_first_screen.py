"""The pure parts of ``bench first_screen``: the account's shape, the history's order, the
requests the clients send, the goals, and the provenance it records."""

from __future__ import annotations

import json
from statistics import median
from typing import Any

import pytest

from bench.first_screen_plan import (
    DAY_MS,
    ELEMENT_WEB_FILTER,
    ELEMENT_WEB_INITIAL_FILTER,
    MESSAGES_PARAMS,
    THUMBNAIL_PARAMS,
    Sizes,
    element_x_room_list,
    encrypted_content,
    goals,
    group_sizes,
    history_schedule,
    message_text,
    mxc_parts,
    plan_rooms,
    read_marker_index,
)
from bench.provenance import command_line, cpu_model, cpu_quota, memory_gib


def test_group_sizes_reach_both_ends_and_most_groups_are_small() -> None:
    sizes = group_sizes(299, 5, 500)
    assert len(sizes) == 299
    assert sizes[0] == 5 and sizes[-1] == 500
    assert sizes == sorted(sizes)
    assert 9 <= median(sizes) <= 11  # the median group is about twice the smallest
    assert 15 <= sum(sizes) / len(sizes) <= 30  # a few big groups, not an even spread
    assert sum(s >= 100 for s in sizes) < 20


def test_group_sizes_of_few_groups() -> None:
    assert group_sizes(0, 5, 500) == []
    assert group_sizes(1, 5, 500) == [500]
    assert group_sizes(2, 5, 40) == [5, 40]


def test_plan_rooms_counts_every_kind() -> None:
    sizes = Sizes(rooms=40, circles=3, posts=5, big_group=200, largest_group=40)
    rooms = plan_rooms(sizes)
    kinds = [r.kind for r in rooms]
    assert kinds.count("dm") == 16
    assert kinds.count("group") + kinds.count("small") == 24  # the 10-member room is one of the groups
    assert kinds.count("small") == 1 and kinds.count("big") == 1 and kinds.count("circle") == 3
    assert len({r.key for r in rooms}) == len(rooms)
    small = next(r for r in rooms if r.kind == "small")
    big = next(r for r in rooms if r.kind == "big")
    assert (small.members, big.members) == (10, 200)
    # The measured rooms are plain text; no group of more than 100 is encrypted.
    assert not small.encrypted and not big.encrypted
    assert not any(r.encrypted for r in rooms if r.kind == "group" and r.members > 100)
    assert sum(r.encrypted for r in rooms if r.kind == "dm") == 8  # half the DMs


@pytest.mark.parametrize(("field", "value", "named"), [
    ("rooms", 1, "--rooms"), ("circles", 0, "--circles"), ("posts", 0, "--posts"),
    ("big_group", 1, "--big-group"), ("history", 0, "--history"), ("read_share", 1.5, "read_share"),
    ("smallest_group", 1, "group sizes"), ("circle_posts_per_day", 0, "circle_posts_per_day"),
])
def test_sizes_refuse_impossible_accounts_naming_the_option(field: str, value: float, named: str) -> None:
    with pytest.raises(ValueError, match=named):
        Sizes(**{field: value}).validate()  # type: ignore[arg-type]


def test_history_is_in_time_order_within_six_months() -> None:
    sizes = Sizes(rooms=10, circles=2, posts=4, big_group=20, largest_group=10, history=6)
    rooms = plan_rooms(sizes)
    now = 1_800_000_000_000
    schedule = history_schedule(rooms, sizes, now)
    assert [m.ts for m in schedule] == sorted(m.ts for m in schedule)
    assert all(now - 182 * DAY_MS <= m.ts < now for m in schedule)
    for room in rooms:
        mine = [m.index for m in schedule if m.room == room.key]
        # Each room's messages come in their own order, as many as the room has.
        assert mine == list(range(4 if room.kind == "circle" else 6))
    assert history_schedule(rooms, sizes, now) == schedule  # the same account every run


def test_circles_post_every_day_so_they_are_recent() -> None:
    sizes = Sizes(rooms=40, circles=5, posts=10, big_group=20, largest_group=10, history=24)
    rooms = plan_rooms(sizes)
    now = 1_800_000_000_000
    schedule = history_schedule(rooms, sizes, now)
    posts = [m for m in schedule if m.room.startswith("circle-")]
    assert len(posts) == 50
    assert all(m.ts >= now - 5 * DAY_MS for m in posts)  # 10 posts at 2 a day: the last 5 days
    assert min(m.ts for m in schedule if not m.room.startswith("circle-")) < now - 150 * DAY_MS


def test_read_markers_leave_a_mix_of_read_and_unread_rooms() -> None:
    marks = [read_marker_index(i, 24, 0.7) for i in range(100)]
    assert sum(m == 23 for m in marks) == 70
    unread = [m for m in marks if m != 23]
    assert None in unread  # some rooms were never opened
    assert all(m is None or 14 <= m < 23 for m in unread)
    assert read_marker_index(3, 1, 0.0) == 0  # never before the first message


def test_messages_and_encrypted_payloads() -> None:
    assert message_text("dm-1", 0) == message_text("dm-1", 0)
    assert len(message_text("dm-1", 3)) > len(message_text("dm-1", 4))  # every seventh is long
    content = encrypted_content("dm-1", 3, "DEVICE")
    assert content["algorithm"] == "m.megolm.v1.aes-sha2"
    assert set(content) == {"algorithm", "ciphertext", "device_id", "sender_key", "session_id"}
    assert len(content["ciphertext"]) > len(message_text("dm-1", 3).encode())


def test_element_x_first_screen_request() -> None:
    body = element_x_room_list()
    the_list = body["lists"]["all_rooms"]
    assert the_list["ranges"] == [[0, 19]] and the_list["timeline_limit"] == 1
    required = {tuple(pair) for pair in the_list["required_state"]}
    for wanted in [("m.room.name", ""), ("m.room.avatar", ""), ("m.room.encryption", ""),
                   ("m.room.member", "$LAZY"), ("m.room.member", "$ME"), ("m.room.create", "")]:
        assert wanted in required
    assert body["extensions"]["receipts"] == {"enabled": True, "rooms": ["*"]}
    assert "pos" not in body  # a position goes in the query string
    assert the_list["filters"] == {"not_room_types": ["m.space"]}  # as matrix-rust-sdk's room list
    json.dumps(body)
    chats = element_x_room_list(filters={"not_room_types": ["m.space", "org.wangxin.merchant_circle"]})
    assert chats["lists"]["all_rooms"]["filters"]["not_room_types"] == ["m.space", "org.wangxin.merchant_circle"]


def test_element_web_and_timeline_requests() -> None:
    assert ELEMENT_WEB_INITIAL_FILTER["room"]["timeline"]["limit"] == 20
    assert ELEMENT_WEB_INITIAL_FILTER["room"]["state"]["lazy_load_members"] is True
    assert "limit" not in ELEMENT_WEB_FILTER["room"]["timeline"]
    assert json.loads(MESSAGES_PARAMS["filter"]) == {"lazy_load_members": True}
    assert (THUMBNAIL_PARAMS["width"], THUMBNAIL_PARAMS["height"], THUMBNAIL_PARAMS["method"]) == ("800", "600",
                                                                                                  "scale")


def test_mxc_parts() -> None:
    assert mxc_parts("mxc://example.org/abc") == ("example.org", "abc")
    for bad in ["https://example.org/abc", "mxc://example.org", "mxc:///abc"]:
        with pytest.raises(ValueError, match="not an mxc URI"):
            mxc_parts(bad)


def test_goals_report_each_limit_and_whether_the_interval_can_tell() -> None:
    result = {
        "first_screen_sliding_sync": {"wangxin": {"p50_ms": 42.0, "bytes_p50": 50_000}, "p50_ratio": 1.01,
                                      "p50_ratio_95pct_interval": [0.97, 1.06]},
        "send_small_room": {"p50_ratio": 1.02, "p50_ratio_95pct_interval": [1.00, 1.04]},
        "send_big_group": {"p50_ratio": 1.09, "p50_ratio_95pct_interval": [1.06, 1.12]},
    }
    got = goals(result)
    assert got["sliding sync first screen p50 <= 50 ms"]["met"] is True
    assert got["sliding sync first screen <= 40 KB"]["met"] is False
    assert got["send p50 ratio <= 1.03 (10-member room)"]["met"] is True
    assert got["send p50 ratio <= 1.03 (big group)"]["met"] is False
    assert got["first_screen_sliding_sync p50 ratio <= 1.05"]["sure"] is False  # 0.97-1.06 straddles 1.05
    assert got["send_small_room p50 ratio <= 1.05"]["sure"] is True
    assert got["send_big_group p50 ratio <= 1.05"] == {"measured": 1.09, "interval": [1.06, 1.12], "limit": 1.05,
                                                       "met": False, "sure": True}
    assert "opening a circle p50 <= 100 ms" not in got  # not measured, not judged


def test_provenance_parsers() -> None:
    assert cpu_model("processor\t: 0\nmodel name\t: Intel(R) Xeon(R) Processor\n") == "Intel(R) Xeon(R) Processor"
    assert cpu_model("") is None
    assert memory_gib("MemTotal:       24731408 kB\nMemFree: 1 kB\n") == 23.6
    assert cpu_quota("200000 100000\n") == 2.0
    assert cpu_quota("max 100000\n") is None
    assert command_line(["first_screen", "--postgres", "postgresql://postgres@127.0.0.1/x y"]) == \
        "python3 run.py bench first_screen --postgres 'postgresql://postgres@127.0.0.1/x y'"


def test_options_that_cannot_work_are_refused_before_anything_starts(tmp_path: Any) -> None:
    from bench.first_screen import check_options

    ok = Sizes(rooms=40, largest_group=40)
    with pytest.raises(ValueError, match="--workers needs --postgres"):
        check_options(ok, 30, 300, False, "127.0.0.1:6379", None, None)
    with pytest.raises(ValueError, match="one or the other"):
        check_options(ok, 30, 300, False, None, str(tmp_path / "new"), str(tmp_path))
    with pytest.raises(ValueError, match="--keep-build: .* exists"):
        check_options(ok, 30, 300, False, None, str(tmp_path), None)
    with pytest.raises(ValueError, match="--reuse-build: no kept.json"):
        check_options(ok, 30, 300, False, None, None, str(tmp_path))
    with pytest.raises(ValueError, match="--samples"):
        check_options(ok, 0, 300, False, None, None, None)
    check_options(ok, 30, 300, True, "127.0.0.1:6379", str(tmp_path / "new"), None)


def test_a_kept_account_is_measured_again_only_on_its_kind_of_database(tmp_path: Any) -> None:
    import attrs

    from bench.heavy_account import Account
    from bench.kept_build import load

    sizes = Sizes(rooms=40, largest_group=40)
    account = Account(viewer_id="@v:x", viewer_token="t", rooms={"small": "!a:x"}, small_speakers=["s"],
                      circles=["!c:x"], space_id=None, filter_id="0")
    (tmp_path / "kept.json").write_text(json.dumps({"kept_at": "then", "server_name": "x", "database": "sqlite",
                                                    "postgres_database": None, "sizes": attrs.asdict(sizes),
                                                    "account": attrs.asdict(account)}))
    kept, got_sizes, got_account = load(str(tmp_path), postgres=False)
    assert (got_sizes, got_account) == (sizes, account)
    with pytest.raises(ValueError, match="holds a sqlite account; this run is on postgres"):
        load(str(tmp_path), postgres=True)


class _FakeSide:
    """A side whose sends take a fixed time (``_sends`` only calls ``send(room)`` and reads ``name``)."""

    def __init__(self, name: str, seconds: float):
        self.name, self.seconds = name, seconds

    def send(self, room_key: str) -> Any:
        return lambda: self.seconds


def test_sends_compare_wangxin_with_stock_and_with_stock_carrying_the_registration() -> None:
    from bench.first_screen import REGISTERED, _sends
    from bench.progress import Progress

    sides: Any = [_FakeSide("wangxin", 0.012), _FakeSide("stock", 0.010), _FakeSide(REGISTERED, 0.011)]
    with Progress("test", {"sends": 20}, every_s=3600) as progress:
        out = _sends(sides, "small", 20, progress, "sends")
    assert out["wangxin"]["p50_ms"] == 12.0 and out["stock"]["p50_ms"] == 10.0 and out[REGISTERED]["p50_ms"] == 11.0
    assert out["p50_ratio"] == 1.2
    assert out["wangxin_vs_registered_p50_ratio"] == pytest.approx(12 / 11, abs=0.001)
    assert out["registered_vs_stock_p50_ratio"] == pytest.approx(1.1, abs=0.001)
    assert "bytes_p50" not in out["wangxin"] and "bytes_ratio" not in out
    two = _sends(sides[:2], "small", 20, progress, "sends")
    assert two["p50_ratio"] == 1.2 and REGISTERED not in two and "registered_vs_stock_p50_ratio" not in two
