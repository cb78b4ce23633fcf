"""What ``bench first_screen`` builds and what it asks, as plain data: no HTTP here.

- the heavy account's shape: how many rooms of which kind and size, and the order and
  timestamps of six months of history;
- the requests the clients send (Element X's first sliding-sync request, Element Web's
  ``/v3/sync`` filters, Element's ``/messages`` and thumbnail parameters);
- the issue's goals, checked against a result.
"""

from __future__ import annotations

import base64
import json
import math
import random
from typing import Any

import attrs

DAY_MS = 24 * 3600 * 1000


@attrs.frozen
class Sizes:
    """The heavy account. ``rooms`` counts DMs and groups (the 10-member room is one of the
    groups); the big group, the circles and the 商家圈 space come on top."""

    rooms: int = 500
    dm_share: float = 0.4
    smallest_group: int = 5
    largest_group: int = 500
    circles: int = 30
    posts: int = 50  # product posts per circle, each with its QR image
    big_group: int = 2000
    small_room: int = 10
    history: int = 24  # messages per DM or group
    read_share: float = 0.7  # rooms the viewer has read to the end
    encrypted_share: float = 0.5  # DMs and groups of at most 100 members that are encrypted
    days: int = 182
    circle_posts_per_day: float = 2.0  # merchants post often (the default quota allows 3 a day)

    def validate(self) -> None:
        if self.rooms < 2:
            raise ValueError(f"--rooms: at least 2 (one DM and the {self.small_room}-member room), found {self.rooms}")
        if not 0 <= self.dm_share < 1:
            raise ValueError(f"dm_share: expected 0 <= share < 1, found {self.dm_share}")
        if not 2 <= self.smallest_group <= self.largest_group:
            raise ValueError(f"group sizes: expected 2 <= smallest <= largest, found {self.smallest_group}, "
                             f"{self.largest_group}")
        if self.circles < 1 or self.posts < 1:
            raise ValueError(f"--circles and --posts: at least 1 each, found {self.circles}, {self.posts}")
        if self.big_group < 2:
            raise ValueError(f"--big-group: at least 2 members, found {self.big_group}")
        if self.history < 1:
            raise ValueError(f"--history: at least 1 message per room, found {self.history}")
        if self.circle_posts_per_day <= 0:
            raise ValueError(f"circle_posts_per_day: expected more than 0, found {self.circle_posts_per_day}")
        for name in ("read_share", "encrypted_share"):
            if not 0 <= getattr(self, name) <= 1:
                raise ValueError(f"{name}: expected a share between 0 and 1, found {getattr(self, name)}")

    @property
    def dms(self) -> int:
        return min(self.rooms - 1, round(self.rooms * self.dm_share))

    @property
    def groups(self) -> int:
        """Groups, the 10-member room included."""
        return self.rooms - self.dms


def group_sizes(n: int, smallest: int, largest: int) -> list[int]:
    """``n`` group sizes between ``smallest`` and ``largest`` (both reached), spread as a
    truncated Pareto distribution with exponent 1: most groups are small (half have at most
    about twice the smallest), a few are large. Deterministic: the distribution's quantiles at
    evenly spaced points, largest last."""
    if n <= 0:
        return []
    if n == 1:
        return [largest]
    a, b = float(smallest), float(largest)
    return [round(a * b / (b - (i / (n - 1)) * (b - a))) for i in range(n)]


@attrs.frozen
class RoomPlan:
    key: str
    kind: str  # "dm", "group", "small" (the 10-member room), "big", "circle"
    members: int  # with the viewer
    encrypted: bool = False
    name: str | None = None
    avatar: bool = False


GROUP_NAMES = ["家人", "同学", "同事", "小区业主", "球友", "驴友", "宝妈", "读书会", "老乡", "合租", "项目组", "羽毛球"]


def plan_rooms(sizes: Sizes) -> list[RoomPlan]:
    """Every room the viewer is in except the space (the follows make it): DMs, groups (one of
    them the ``small_room``-member room the send benchmark uses), the big group, the circles."""
    sizes.validate()
    rooms: list[RoomPlan] = []
    every = _every(sizes.encrypted_share)
    for i in range(sizes.dms):
        rooms.append(RoomPlan(f"dm-{i}", "dm", 2, encrypted=every(i)))
    for i, members in enumerate(group_sizes(sizes.groups - 1, sizes.smallest_group, sizes.largest_group)):
        rooms.append(RoomPlan(f"group-{i}", "group", members, encrypted=members <= 100 and every(i),
                              name=f"{GROUP_NAMES[i % len(GROUP_NAMES)]} {i}", avatar=i % 2 == 0))
    rooms.append(RoomPlan("small", "small", sizes.small_room, name=f"{sizes.small_room} 人小群"))
    rooms.append(RoomPlan("big", "big", sizes.big_group, name=f"{sizes.big_group} 人大群"))
    for i in range(sizes.circles):
        rooms.append(RoomPlan(f"circle-{i}", "circle", 2, name=f"茶叶店 {i}"))
    return rooms


def _every(share: float) -> Any:
    """``i -> bool`` true for ``share`` of consecutive indexes, spread evenly."""
    return lambda i: int((i + 1) * share) > int(i * share)


@attrs.frozen
class Message:
    ts: int  # origin_server_ts the history claims (appservice senders send it with ``?ts=``)
    room: str  # RoomPlan.key
    index: int  # position in its room's history


def history_schedule(rooms: list[RoomPlan], sizes: Sizes, now_ms: int, seed: int = 25) -> list[Message]:
    """Every room's history at random times, merged into one list in time order: sent in that
    order, the rooms' last messages (which order the room list) come in the order of their
    timestamps. A DM or group has ``sizes.history`` messages over the last ``sizes.days`` days; a
    circle ``sizes.posts`` posts over as many days as its merchant needs at
    ``sizes.circle_posts_per_day``, so circles are among the most recent rooms, as the circles
    of merchants who post every day are."""
    rng = random.Random(seed)
    end = now_ms - 3600 * 1000
    messages = []
    for room in rooms:
        count, days = sizes.history, sizes.days
        if room.kind == "circle":
            count, days = sizes.posts, min(sizes.days, max(1, math.ceil(sizes.posts / sizes.circle_posts_per_day)))
        start = now_ms - days * DAY_MS
        for index, ts in enumerate(sorted(rng.randint(start, end) for _ in range(count))):
            messages.append(Message(ts, room.key, index))
    messages.sort(key=lambda m: (m.ts, m.room, m.index))
    return messages


PHRASES = ["好的", "收到，谢谢！", "明天几点见？", "我到了，在门口等你", "这个周末有空吗？一起去爬山吧",
           "刚看到消息，马上回来", "哈哈哈哈", "照片拍得真好看", "会议改到下午三点了，大家注意一下时间",
           "晚饭吃什么？", "已经转账了，请查收", "路上堵车，可能要晚二十分钟", "生日快乐！🎂",
           "这家店的茶叶不错，推荐给你们", "孩子的作业今天要交吗？", "下周的活动报名链接发群里了"]


def message_text(room: str, index: int) -> str:
    """A short chat message, as most are; every seventh is three phrases long."""
    h = sum(map(ord, room)) * 31 + index
    text = PHRASES[h % len(PHRASES)]
    if index % 7 == 3:
        text = "，".join(PHRASES[(h + k) % len(PHRASES)] for k in range(3))
    return text


def encrypted_content(room: str, index: int, device_id: str) -> dict[str, Any]:
    """An ``m.room.encrypted`` payload the size a Megolm message of that text has: the server
    never reads it, only stores and serves it."""
    plain = json.dumps({"type": "m.room.message", "room_id": "!" + "x" * 30,
                        "content": {"msgtype": "m.text", "body": message_text(room, index)}},
                       ensure_ascii=False).encode()
    rng = random.Random(f"{room}/{index}")
    return {"algorithm": "m.megolm.v1.aes-sha2",
            "ciphertext": _b64(rng.randbytes(len(plain) + 16 + 64)),
            "device_id": device_id,
            "sender_key": _b64(random.Random(device_id).randbytes(32)),
            "session_id": _b64(random.Random(room).randbytes(32))}


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode().rstrip("=")


def read_marker_index(room_index: int, history: int, read_share: float) -> int | None:
    """Where the viewer's read receipt sits in a room's history of ``history`` messages: the
    last one for ``read_share`` of the rooms; for the rest a few messages back (1 to 9 unread),
    or none at all for every fifth of them."""
    if _every(read_share)(room_index):
        return history - 1
    if room_index % 5 == 0:
        return None
    return max(0, history - 1 - (1 + room_index % 9))


# -- What the clients send ----------------------------------------------------------------

SLIDING_SYNC_PATH = "/_matrix/client/unstable/org.matrix.simplified_msc3575/sync"

# matrix-rust-sdk's RoomListService (Element X): the ``all_rooms`` list starts in selective
# mode on rooms 0-19, one timeline event each, with this required state.
ELEMENT_X_REQUIRED_STATE = [
    ["m.room.name", ""],
    ["m.room.encryption", ""],
    ["m.room.member", "$LAZY"],
    ["m.room.member", "$ME"],
    ["m.room.topic", ""],
    ["m.room.avatar", ""],
    ["m.room.canonical_alias", ""],
    ["m.room.power_levels", ""],
    ["org.matrix.msc3401.call.member", "*"],
    ["m.room.join_rules", ""],
    ["m.room.tombstone", ""],
    ["m.room.create", ""],
    ["m.room.history_visibility", ""],
    ["io.element.functional_members", ""],
    ["m.space.parent", "*"],
    ["m.space.child", "*"],
]


# Element X leaves spaces out of its room list (matrix-rust-sdk's RoomListService asks for
# ``not_room_types: [m.space]``); a client that knows Wangxin also leaves the merchant circles out
# of the chat list (docs/operating.md, "Deploying for speed"): the circles and the space they are
# filed in are one filter away.
ELEMENT_X_FILTERS: dict[str, Any] = {"not_room_types": ["m.space"]}
CIRCLE_ROOM_TYPE = "org.wangxin.merchant_circle"
CHATS_ONLY_FILTERS: dict[str, Any] = {"not_room_types": ["m.space", CIRCLE_ROOM_TYPE]}


def element_x_room_list(first: int = 0, last: int = 19, filters: dict[str, Any] | None = None) -> dict[str, Any]:
    """The body of Element X's room-list request (its ``pos`` and ``timeout`` go in the query:
    ``timeout=0`` while the list loads, a long poll once it is loaded); ``filters`` replace
    Element X's own."""
    return {
        "conn_id": "room-list",
        "lists": {"all_rooms": {"ranges": [[first, last]], "timeline_limit": 1,
                                "required_state": ELEMENT_X_REQUIRED_STATE,
                                "filters": ELEMENT_X_FILTERS if filters is None else filters}},
        "extensions": {"account_data": {"enabled": True},
                       "receipts": {"enabled": True, "rooms": ["*"]},
                       "typing": {"enabled": True}},
    }


# matrix-js-sdk as Element Web starts it (initialSyncLimit 20, lazyLoadMembers): the first
# /sync sends this filter inline with timeout=0; later ones use it uploaded, without the limit.
ELEMENT_WEB_INITIAL_FILTER = {"room": {"timeline": {"unread_thread_notifications": True, "limit": 20},
                                       "state": {"lazy_load_members": True}}}
ELEMENT_WEB_FILTER = {"room": {"timeline": {"unread_thread_notifications": True},
                               "state": {"lazy_load_members": True}}}

# Element's timeline pages 20 events at a time, lazy-loading members; an image tile asks for
# an 800x600 "scale" thumbnail (MImageBody).
MESSAGES_PARAMS = {"dir": "b", "limit": "20", "filter": json.dumps({"lazy_load_members": True})}
THUMBNAIL_PARAMS = {"width": "800", "height": "600", "method": "scale", "allow_redirect": "true"}
BROWSER_CONNECTIONS = 6  # a browser opens at most six HTTP/1.1 connections to one host


def mxc_parts(mxc: str) -> tuple[str, str]:
    """``mxc://server/id`` -> ``(server, id)``."""
    if not mxc.startswith("mxc://"):
        raise ValueError(f"not an mxc URI: {mxc!r}")
    server, _, media_id = mxc[len("mxc://"):].partition("/")
    if not server or not media_id:
        raise ValueError(f"not an mxc URI: {mxc!r}")
    return server, media_id


# -- The goals ----------------------------------------------------------------------

# (name, where in the result, what is compared, limit)
GOALS = [
    ("sliding sync first screen p50 <= 50 ms", ("first_screen_sliding_sync", "wangxin", "p50_ms"), 50.0),
    ("sliding sync first screen <= 40 KB", ("first_screen_sliding_sync", "wangxin", "bytes_p50"), 40 * 1024),
    ("opening a circle p50 <= 100 ms", ("open_circle", "wangxin", "p50_ms"), 100.0),
    ("incremental sync p50 <= 15 ms", ("incremental_sync_v3", "wangxin", "p50_ms"), 15.0),
    ("incremental sliding sync p50 <= 15 ms", ("incremental_sliding_sync", "wangxin", "p50_ms"), 15.0),
    ("send p50 ratio <= 1.03 (10-member room)", ("send_small_room", "p50_ratio"), 1.03),
    ("send p50 ratio <= 1.03 (big group)", ("send_big_group", "p50_ratio"), 1.03),
]
RATIO_LIMIT = 1.05


def goals(result: dict[str, Any]) -> dict[str, Any]:
    """Each goal with the measured value and whether it holds; plus every p50 ratio against the
    1.05 limit, with its interval (an interval straddling a limit means this run cannot tell)."""
    out: dict[str, Any] = {}
    for name, path, limit in GOALS:
        value: Any = result
        for key in path:
            value = value.get(key) if isinstance(value, dict) else None
        if value is not None:
            out[name] = {"measured": value, "limit": limit, "met": value <= limit}
    for key, section in result.items():
        if isinstance(section, dict) and "p50_ratio" in section:
            interval = section.get("p50_ratio_95pct_interval")
            out[f"{key} p50 ratio <= {RATIO_LIMIT}"] = {
                "measured": section["p50_ratio"], "interval": interval, "limit": RATIO_LIMIT,
                "met": section["p50_ratio"] <= RATIO_LIMIT,
                "sure": None if not interval else (interval[1] <= RATIO_LIMIT or interval[0] > RATIO_LIMIT)}
    return out
