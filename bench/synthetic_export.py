"""Deterministic synthetic Telegram Desktop full export for import benchmarks.

Writes a ``result.json`` in Telegram Desktop's full-account shape
(``personal_information``, ``contacts.list``, ``chats.list``) with N contacts
carrying unique Chinese mobile numbers and G groups whose members show up as
message senders, so it exercises contacts, phone numbers and memberships::

    python bench/synthetic_export.py --contacts 5000 --groups 300 --out FILE

The same arguments and seed always give the same bytes. Every group is
created by the exporting user (who is therefore a member and the owner), so
``memberships`` counts the creator once per group plus the sampled contacts;
that is the number ``parse_export`` reports as ``membership_count``.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
from pathlib import Path
from typing import Any

import attrs

DEFAULT_CONTACTS = 5_000
DEFAULT_GROUPS = 300
DEFAULT_MEMBERSHIPS = 15_000
DEFAULT_SEED = 20_240_601

SELF_ID = 5_000_000_000
FIRST_CONTACT_ID = 5_000_000_001
FIRST_GROUP_ID = 1_700_000_000
BASE_TIME = 1_700_000_000

# Prefixes phonenumbers accepts as valid mainland mobile ranges.
_MOBILE_PREFIXES = (
    "130", "131", "132", "133", "135", "136", "137", "138", "139", "150", "151", "152",
    "155", "156", "157", "158", "159", "176", "177", "178", "180", "181", "182", "183",
    "185", "186", "187", "188", "189", "198", "199",
)
_SURNAMES = (
    "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘于蒋蔡"
    "余杜叶程苏魏吕丁任沈姚卢姜崔钟谭陆汪范金石廖贾夏韦付方白邹孟熊秦邱江尹薛闫段雷侯"
    "龙史陶黎贺顾毛郝龚邵万钱严覃武戴莫孔向汤"
)
_GIVEN = (
    "伟芳娜敏静丽强磊军洋勇艳杰娟涛明超秀霞平刚桂英华玉兰萍鹏辉建国红梅文斌宇浩凯晨婷"
    "雪琳欣怡佳悦子轩博涵睿思源雨彤梓"
)


@attrs.frozen
class ExportStats:
    """What a generated export contains, for checking the parser's counts."""

    contacts: int
    groups: int
    memberships: int


def _unique_names(rng: random.Random, count: int) -> list[str]:
    names: list[str] = []
    seen: set[str] = set()
    while len(names) < count:
        length = 1 if rng.random() < 0.3 else 2
        name = rng.choice(_SURNAMES) + "".join(rng.choice(_GIVEN) for _ in range(length))
        if name in seen:
            # Keep names unique so member lists resolve to one id each.
            name = f"{name}{len(names)}"
        if name not in seen:
            seen.add(name)
            names.append(name)
    return names


def _unique_mobiles(rng: random.Random, count: int) -> list[str]:
    numbers: list[str] = []
    seen: set[str] = set()
    while len(numbers) < count:
        prefix = rng.choice(_MOBILE_PREFIXES)
        rest = f"{rng.randrange(10**8):08d}"
        if prefix + rest in seen:
            continue
        seen.add(prefix + rest)
        numbers.append(f"+86 {prefix} {rest[:4]} {rest[4:]}")
    return numbers


def _group_sizes(rng: random.Random, groups: int, contact_slots: int, contacts: int) -> list[int]:
    """Split ``contact_slots`` member places over groups: each at least 1, at most ``contacts``."""
    weights = [rng.uniform(0.2, 1.8) for _ in range(groups)]
    total = sum(weights)
    sizes = [max(1, min(contacts, int(contact_slots * w / total))) for w in weights]
    order = list(range(groups))
    while sum(sizes) != contact_slots:
        rng.shuffle(order)
        step = 1 if sum(sizes) < contact_slots else -1
        for index in order:
            if sum(sizes) == contact_slots:
                break
            if 1 <= sizes[index] + step <= contacts:
                sizes[index] += step
    return sizes


def _message(message_id: int, sender_id: int, sender: str, text: str) -> dict[str, Any]:
    stamp = BASE_TIME + message_id * 37
    return {
        "id": message_id,
        "type": "message",
        "date": f"2023-11-{(message_id % 28) + 1:02d}T{(message_id // 60) % 24:02d}:{message_id % 60:02d}:00",
        "date_unixtime": str(stamp),
        "from": sender,
        "from_id": f"user{sender_id}",
        "text": text,
        "text_entities": [{"type": "plain", "text": text}],
    }


def build_export(
    contacts: int = DEFAULT_CONTACTS,
    groups: int = DEFAULT_GROUPS,
    memberships: int | None = None,
    seed: int = DEFAULT_SEED,
) -> tuple[dict[str, Any], ExportStats]:
    """Build the export document in memory.

    Args:
        contacts: Number of contacts (each with a unique CN mobile number).
        groups: Number of groups.
        memberships: Total (group, member) pairs including the creator of each
            group; by default 15,000 scaled to ``contacts`` (3 per contact),
            at least 2 per group and at most every contact in every group.
        seed: Random seed; equal arguments give equal output.

    Returns:
        (the JSON document, its counts).
    """
    if contacts < 1 or groups < 0:
        raise ValueError("need at least one contact and a non-negative number of groups")
    if memberships is None:
        memberships = max(groups * 2, round(DEFAULT_MEMBERSHIPS * contacts / DEFAULT_CONTACTS))
        memberships = min(memberships, groups * (contacts + 1))
    contact_slots = memberships - groups
    if groups and not groups <= contact_slots <= groups * contacts:
        raise ValueError("memberships must allow 1..contacts contacts per group plus its creator")
    rng = random.Random(seed)
    names = _unique_names(rng, contacts + 1)
    self_name, contact_names = names[0], names[1:]
    mobiles = _unique_mobiles(rng, contacts + 1)
    contact_ids = [FIRST_CONTACT_ID + i for i in range(contacts)]

    contact_list = [
        {
            "user_id": contact_ids[i],
            "first_name": contact_names[i],
            "last_name": "",
            "phone_number": mobiles[i + 1],
            "date": "2023-10-01T12:00:00",
            "date_unixtime": str(BASE_TIME - i),
        }
        for i in range(contacts)
    ]
    chats: list[dict[str, Any]] = []
    message_id = 0
    # A few personal chats, which the parser merges into the listed contacts.
    for i in range(0, contacts, 20):
        message_id += 1
        chats.append({
            "name": contact_names[i],
            "type": "personal_chat",
            "id": contact_ids[i],
            "messages": [_message(message_id, contact_ids[i], contact_names[i], "你好")],
        })
    sizes = _group_sizes(rng, groups, contact_slots, contacts) if groups else []
    for g, size in enumerate(sizes):
        members = rng.sample(range(contacts), size)
        supergroup = g % 3 == 0
        title = f"{rng.choice(_SURNAMES)}家群 {g + 1}"
        message_id += 1
        messages: list[dict[str, Any]] = [{
            "id": message_id,
            "type": "service",
            "date": "2023-11-01T08:00:00",
            "date_unixtime": str(BASE_TIME + message_id),
            "actor": self_name,
            "actor_id": f"user{SELF_ID}",
            "action": "create_channel" if supergroup else "create_group",
            "title": title,
            **({} if supergroup else {"members": [contact_names[m] for m in members[:5]]}),
            "text": "",
        }]
        for m in members:
            message_id += 1
            messages.append(_message(message_id, contact_ids[m], contact_names[m], f"消息 {message_id}"))
        chats.append({
            "name": title,
            "type": "private_supergroup" if supergroup else "private_group",
            "id": FIRST_GROUP_ID + g,
            "messages": messages,
        })
    document = {
        "about": "Synthetic export generated by bench/synthetic_export.py.",
        "personal_information": {
            "user_id": SELF_ID,
            "first_name": self_name,
            "last_name": "",
            "phone_number": mobiles[0],
            "username": "",
            "bio": "",
        },
        "contacts": {"about": "Synthetic contacts.", "list": contact_list},
        "chats": {"about": "Synthetic chats.", "list": chats},
    }
    return document, ExportStats(contacts=contacts, groups=groups, memberships=memberships if groups else 0)


def export_bytes(
    contacts: int = DEFAULT_CONTACTS,
    groups: int = DEFAULT_GROUPS,
    memberships: int | None = None,
    seed: int = DEFAULT_SEED,
) -> tuple[bytes, ExportStats]:
    """Serialise ``build_export`` the way Telegram Desktop does (UTF-8, one-space indent).

    Args:
        contacts: See ``build_export``.
        groups: See ``build_export``.
        memberships: See ``build_export``.
        seed: See ``build_export``.

    Returns:
        (file bytes, counts).
    """
    document, stats = build_export(contacts, groups, memberships, seed)
    return json.dumps(document, ensure_ascii=False, indent=1).encode("utf-8"), stats


def write_export(
    path: Path,
    contacts: int = DEFAULT_CONTACTS,
    groups: int = DEFAULT_GROUPS,
    memberships: int | None = None,
    seed: int = DEFAULT_SEED,
) -> ExportStats:
    """Write the synthetic export to ``path``.

    Args:
        path: Output file.
        contacts: See ``build_export``.
        groups: See ``build_export``.
        memberships: See ``build_export``.
        seed: See ``build_export``.

    Returns:
        The counts written.
    """
    data, stats = export_bytes(contacts, groups, memberships, seed)
    path.write_bytes(data)
    return stats


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point.

    Args:
        argv: Arguments without the program name; ``sys.argv[1:]`` when None.

    Returns:
        Process exit status.
    """
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--contacts", type=int, default=DEFAULT_CONTACTS)
    parser.add_argument("--groups", type=int, default=DEFAULT_GROUPS)
    parser.add_argument("--memberships", type=int, default=None,
                        help="total group memberships incl. each group's creator (default: 3 per contact)")
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    try:
        stats = write_export(args.out, args.contacts, args.groups, args.memberships, args.seed)
    except ValueError as exc:
        parser.error(str(exc))
    print(f"wrote {args.out}: {stats.contacts} contacts, {stats.groups} groups, "
          f"{stats.memberships} memberships", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
