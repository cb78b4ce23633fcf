"""What an import will do, worked out from a parsed export: pure code, no I/O.

An export (``bridges.importers``) becomes people and groups with stable keys:

- a person's key is ``tel:<first E.164 number>`` when the export gives a number, else
  ``src:<network>:<source id>``; the same person in two files, or twice in one, has one key;
- a group's key is ``<network>:<source group id>``, so importing the same or an overlapping
  file again finds the rooms it made last time.

The runner (``bridges/contact_import/``) recomputes this plan from the stored file when it
resumes, so the plan must be a deterministic function of the file.

Parts: the file's numbers are looked up in one order (``numbers_in_order``: contacts in file
order, then group members). When a day's lookups cannot cover them all, a contact or group is
imported once all its numbers are looked up (``ready``), which always gives a prefix of the
contacts and of the groups; ``part`` is the plan of one such slice.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import attrs

from bridges.importers import Contact, ImportedExport

# Which network a format's source ids belong to: ids from two formats of one network match.
NETWORKS = {
    "telegram_json": "telegram",
    "wechat_contacts_csv": "wechat",
    "wechat_json": "wechat",
    "whatsapp_txt": "whatsapp",
    "vcard": "contacts",
    "google_csv": "contacts",
}
SOURCE_LABELS = {"telegram": "Telegram", "wechat": "WeChat", "whatsapp": "WhatsApp", "contacts": "your phone contacts"}
PLACEHOLDER_SUFFIX = " (not on Wangxin yet)"
SAMPLES = 3
MAX_PHONES_PER_CONTACT = 10


def msisdn(e164: str) -> str:
    """Synapse's storage form of a phone number: E.164 digits without '+' (docs/synapse.md, "Phone numbers")."""
    return e164.lstrip("+")


@attrs.frozen
class Person:
    key: str
    name: str
    phones: tuple[str, ...]  # E.164 with '+'
    source_key: str | None  # "<network>:<source id>"; None for hashes of name and number

    def user_in(self, matches: Mapping[str, str]) -> str | None:
        """The account found for any of this person's numbers (``matches``: msisdn -> user id)."""
        for phone in self.phones:
            user = matches.get(msisdn(phone))
            if user:
                return user
        return None


@attrs.frozen
class PlannedGroup:
    key: str
    name: str
    members: tuple[Person, ...]


@attrs.frozen
class ImportPlan:
    format: str
    format_label: str
    network: str
    contacts: tuple[Person, ...]
    groups: tuple[PlannedGroup, ...]
    self_source_key: str | None
    warnings: tuple[str, ...]
    max_phones: int = MAX_PHONES_PER_CONTACT
    capped: int = 0  # people with more numbers than max_phones (only the first ones are used)

    @property
    def source_label(self) -> str:
        return SOURCE_LABELS[self.network]

    def msisdns(self) -> list[str]:
        """Every distinct number of the file, in Synapse's storage form, sorted."""
        numbers = {msisdn(p) for person in self.people() for p in person.phones}
        return sorted(numbers)

    def numbers_in_order(self) -> list[str]:
        """Every distinct number (storage form) in the order they are looked up: contacts in file
        order, then each group's members."""
        seen: dict[str, None] = {}
        for person in self._unit_people():
            for phone in person:
                seen.setdefault(msisdn(phone), None)
        return list(seen)

    def _unit_people(self) -> list[tuple[str, ...]]:
        # One entry per contact, then one per group (all its members' numbers).
        units = [c.phones for c in self.contacts]
        units += [tuple(p for m in g.members for p in m.phones) for g in self.groups]
        return units

    def ready(self, looked_up: int) -> tuple[int, int]:
        """How many contacts and groups have all their numbers among the first ``looked_up`` of
        ``numbers_in_order``: they may be imported."""
        seen: set[str] = set()
        done = 0
        for phones in self._unit_people():
            seen.update(msisdn(p) for p in phones)
            if len(seen) > looked_up:
                break
            done += 1
        contacts = min(done, len(self.contacts))
        return contacts, done - contacts

    def part(self, start: tuple[int, int], end: tuple[int, int]) -> ImportPlan:
        """The plan of the contacts and groups from ``start`` to ``end`` (``ready`` results)."""
        return attrs.evolve(self, contacts=self.contacts[start[0]:end[0]], groups=self.groups[start[1]:end[1]])

    def people(self) -> list[Person]:
        """Contacts and group members, each person once (by key), in file order."""
        seen: dict[str, Person] = {}
        for person in self.contacts:
            seen.setdefault(person.key, person)
        for group in self.groups:
            for person in group.members:
                seen.setdefault(person.key, person)
        return list(seen.values())

    def absent_members(self, matches: Mapping[str, str], importer: str) -> list[Person]:
        """Group members with no account found: they become placeholders."""
        seen: dict[str, Person] = {}
        for group in self.groups:
            for person in group.members:
                if person.user_in(matches) is None:
                    seen.setdefault(person.key, person)
        return list(seen.values())

    def counts(self, matches: Mapping[str, str], importer: str) -> dict[str, int]:
        matched = {u for person in self.people() if (u := person.user_in(matches)) and u != importer}
        return {
            "contacts": len(self.contacts),
            "with_phone": sum(1 for c in self.contacts if c.phones),
            "groups": len(self.groups),
            "memberships": sum(len(g.members) for g in self.groups),
            "matched": len(matched),
            "placeholders": len(self.absent_members(matches, importer)),
            "invitable_by_sms": sum(1 for c in self.contacts if c.phones and c.user_in(matches) is None),
            "dm_invitations": len({u for c in self.contacts if (u := c.user_in(matches)) and u != importer}),
        }


def _contact_person(network: str, contact: Contact, max_phones: int) -> Person:
    return _person(network, contact.source_id, contact.name, contact.phones[:max_phones])


def _person(network: str, source_id: str, name: str, phones: tuple[str, ...]) -> Person:
    # "h:..." ids are hashes the parser made of a name and numbers: not an id on the network.
    source_key = None if source_id.startswith("h:") else f"{network}:{source_id}"
    if phones:
        key = f"tel:{phones[0]}"
    elif source_key:
        key = f"src:{source_key}"
    else:
        key = f"src:{network}:{source_id}"
    return Person(key=key, name=(name or "").strip() or (phones[0] if phones else "?"), phones=phones,
                  source_key=source_key)


def build_plan(export: ImportedExport, max_phones: int = MAX_PHONES_PER_CONTACT) -> ImportPlan:
    network = NETWORKS[export.format]
    by_source = {c.source_id: c for c in export.contacts}
    contacts = tuple(_contact_person(network, c, max_phones) for c in export.contacts)
    capped = {c.source_id for c in export.contacts if len(c.phones) > max_phones}
    groups = []
    for group in export.groups:
        members: dict[str, Person] = {}
        for member in group.members:
            if export.self_source_id is not None and member.source_id == export.self_source_id:
                continue  # the importer themself
            phones = member.phones or (by_source[member.source_id].phones if member.source_id in by_source else ())
            if len(phones) > max_phones:
                capped.add(member.source_id)
            person = _person(network, member.source_id, member.name, phones[:max_phones])
            members.setdefault(person.key, person)
        groups.append(
            PlannedGroup(key=f"{network}:{group.source_id}", name=group.name.strip() or "Imported group",
                         members=tuple(members.values()))
        )
    self_key = f"{network}:{export.self_source_id}" if export.self_source_id else None
    return ImportPlan(
        format=export.format,
        format_label=export.format_label,
        network=network,
        contacts=contacts,
        groups=tuple(groups),
        self_source_key=self_key,
        warnings=export.warnings,
        max_phones=max_phones,
        capped=len(capped),
    )


def placeholder_name(person: Person) -> str:
    return person.name[:200] + PLACEHOLDER_SUFFIX


def in_how_long(ms: int) -> str:
    minutes = max(1, round(ms / 60000))
    return f"in {minutes} min" if minutes < 120 else f"in {round(minutes / 60)} h"


def _found_lines(plan: ImportPlan, filename: str, c: Mapping[str, int]) -> list[str]:
    lines = [
        f"{filename}: {plan.format_label}.",
        f"Found {c['contacts']} contacts ({c['with_phone']} with a phone number) and {c['groups']} groups "
        f"with {c['memberships']} members in all.",
    ]
    samples = [f"  • {p.name}" + (f" {p.phones[0]}" if p.phones else "") for p in plan.contacts[:SAMPLES]]
    samples += [f"  • group “{g.name}” ({len(g.members)} members)" for g in plan.groups[:SAMPLES]]
    if samples:
        lines += ["For example:", *samples]
    if plan.capped:
        lines.append(f"{plan.capped} contacts have more than {plan.max_phones} phone numbers; only the first "
                     f"{plan.max_phones} of each are used.")
    return lines


def preview_in_parts_text(plan: ImportPlan, filename: str, *, remaining_today: int, per_day: int,
                          resets_in_ms: int) -> str:
    """The answer to ``import`` for a file with more numbers than the importer may look up today:
    nothing was looked up yet; it says what is imported today and how many days the rest takes."""
    c = plan.counts({}, "")
    numbers = len(plan.numbers_in_order())
    lines = _found_lines(plan, filename, c)
    later_days = math.ceil((numbers - remaining_today) / per_day)
    if remaining_today:
        lines.append(f"That is {numbers} phone numbers to check, more than the {remaining_today} lookups you have "
                     f"left today (you may look up {per_day} a day).")
        contacts, groups = plan.ready(remaining_today)
        today = f"the first {contacts} contacts today" + (f" and the first {groups} groups" if groups else "")
        lines.append(f"If you confirm, I import {today}, and the rest by itself on later days as your lookups "
                     f"renew at 00:00 UTC: {later_days} more days. I tell you here after each part.")
    else:
        lines.append(f"That is {numbers} phone numbers to check, and you have no phone-number lookups left today "
                     f"(you may look up {per_day} a day).")
        lines.append(f"If you confirm, the import starts by itself when your lookups renew at 00:00 UTC "
                     f"({in_how_long(resets_in_ms)}) and takes {later_days} days. I tell you here after each part.")
    lines.append("I check who of them is on Wangxin part by part; an administrator can raise lookups_per_day "
                 "to go faster.")
    if plan.warnings:
        lines.append(f"{len(plan.warnings)} warnings, e.g.: {plan.warnings[0]}")
    lines.append("Send “import confirm” to go ahead or “import cancel” to drop this file.")
    return "\n".join(lines)


def preview_text(plan: ImportPlan, filename: str, matches: Mapping[str, str], importer: str) -> str:
    """The dry-run answer to ``import``: what was found and what ``import confirm`` will do."""
    c = plan.counts(matches, importer)
    lines = _found_lines(plan, filename, c)
    lines.append("If you confirm:")
    lines.append(f"  • {c['matched']} people are already on Wangxin and let others find them by number.")
    if c["dm_invitations"]:
        lines.append(f"  • {c['dm_invitations']} of your contacts get a direct-chat invitation from you.")
    if plan.groups:
        lines.append(
            f"  • {c['groups']} groups become rooms with you as admin; members who are here are invited, "
            f"and {c['placeholders']} who are not yet appear as placeholders until they join Wangxin."
        )
    if c["invitable_by_sms"]:
        lines.append(f"  • {c['invitable_by_sms']} contacts with a number are kept so you can invite them by SMS.")
    if plan.self_source_key:
        own_id = plan.self_source_key.split(":", 1)[1]
        lines.append(
            f"  • The file names you as {plan.source_label} user {own_id}. If you are discoverable, people who "
            "have you as a placeholder in groups they imported are asked to confirm it is you; once they do, "
            "you take the placeholder's place."
        )
    without = c["contacts"] - c["with_phone"]
    if without:
        lines.append(f"  • {without} contacts without a phone number are skipped.")
    if plan.warnings:
        lines.append(f"{len(plan.warnings)} warnings, e.g.: {plan.warnings[0]}")
    lines.append("Send “import confirm” to go ahead or “import cancel” to drop this file.")
    return "\n".join(lines)
