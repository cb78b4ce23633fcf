"""What ``bench parcels`` sends, as plain data: no HTTP here.

Each person gets ``updates`` shipment updates (the issue's "10 each": 10,000 for 1,000 people).
Their distinct updates belong to parcels that walk the statuses in order (``STATUS_PATH``, five
per parcel; a person's last parcel may stop on its way). Of all updates:

- **replays** (``REPLAY_SHARE``): an exact repeat of an update the person was sent earlier
  (same shipment, status and ``at``); it changes nothing;
- **out of order** (``LATE_SHARE``): two consecutive updates of a parcel swapped, so the one
  stamped earlier arrives after the later one and stays history.

A person's parcels interleave; the run goes in rounds, each round one update for every person
(in a new random order), so one person's updates are far apart, as a platform's would be.

``mirror`` gives, for each update, what the module does with it (a new card, an edit, nothing;
and whether it notifies): the direct arm of the benchmark sends exactly those events itself.
Every update carries a unique token in its ``detail``, which its card shows: that is how the
benchmark sees it arrive in ``/sync``.
"""

from __future__ import annotations

import random
from collections.abc import Sequence

import attrs

from synapse_modules.parcels.rules import Update, alert_for, parcel_state

STATUS_PATH = ("created", "picked_up", "in_transit", "out_for_delivery", "delivered")
REPLAY_SHARE = 0.05
LATE_SHARE = 0.05
STEP_MS = 3 * 3600 * 1000  # between a parcel's scans
LOCATIONS = ("杭州转运中心", "上海浦东集散中心", "广州白云分拨中心", "北京顺义转运中心", "成都双流营业部",
             "武汉东西湖分拨中心", "深圳宝安营业点")
CARRIERS = ("sf", "zto", "yto", "jd", "ems", "yunda", "sto")


@attrs.frozen
class Send:
    """One shipment webhook of the run."""

    person: int
    parcel: int  # the person's parcel number (0, 1, ...)
    step: int  # the update's position on its parcel's status path
    status: str
    at: int
    token: int  # unique per distinct update; a replay carries its original's
    replay: bool = False
    late: bool = False  # stamped before an update of its parcel that was sent earlier

    @property
    def shipment_key(self) -> tuple[int, int]:
        return (self.person, self.parcel)


@attrs.frozen
class Plan:
    people: int
    updates: int  # per person
    rounds: tuple[tuple[Send, ...], ...]  # round k: every person's k-th update

    def sends(self) -> list[Send]:
        return [s for r in self.rounds for s in r]

    @property
    def replays(self) -> int:
        return sum(s.replay for s in self.sends())

    @property
    def late(self) -> int:
        return sum(s.late for s in self.sends())


def check_sizes(people: int, updates: int) -> None:
    if people < 1:
        raise ValueError(f"--people: at least 1, found {people}")
    if updates < 2:
        raise ValueError(f"--shipments: at least 2 updates per person, found {updates}")


def make_plan(people: int, updates: int, base_ms: int, seed: int = 0) -> Plan:
    """``updates`` per person (at least 2), timestamps from ``base_ms`` on."""
    check_sizes(people, updates)
    rng = random.Random(seed)
    total = people * updates
    replays = [0] * people
    for index in rng.sample(range(total), round(total * REPLAY_SHARE)):
        replays[index // updates] += 1
    # Distinct updates per person, then which consecutive pairs are swapped.
    distinct: list[list[Send]] = []
    token = 0
    for p in range(people):
        n = updates - min(replays[p], updates - 1)
        mine = []
        for i in range(n):
            parcel, step = divmod(i, len(STATUS_PATH))
            at = base_ms + (parcel + step) * STEP_MS  # a person's parcels overlap in time
            mine.append(Send(p, parcel, step, STATUS_PATH[step], at, token))
            token += 1
        distinct.append(mine)
    want_late = round(total * LATE_SHARE)
    pairs = [(p, i) for p, mine in enumerate(distinct) for i in range(len(mine) - 1)
             if mine[i].parcel == mine[i + 1].parcel]
    rng.shuffle(pairs)
    swapped: set[tuple[int, int]] = set()
    for p, i in pairs:
        if len(swapped) >= want_late:
            break
        if (p, i - 1) in swapped or (p, i + 1) in swapped or (p, i) in swapped:
            continue
        swapped.add((p, i))
    orders = []
    for p, mine in enumerate(distinct):
        by_parcel: dict[int, list[Send]] = {}
        for send in mine:
            by_parcel.setdefault(send.parcel, []).append(send)
        for i in range(len(mine) - 1):
            if (p, i) in swapped:
                a, b = mine[i], mine[i + 1]
                queue = by_parcel[a.parcel]
                j = queue.index(a)
                queue[j], queue[j + 1] = b, attrs.evolve(a, late=True)
        order = _interleave(list(by_parcel.values()), rng)
        for _ in range(updates - len(order)):  # replays, each after its original
            k = rng.randrange(len(order))
            original = attrs.evolve(order[k], replay=True, late=False)
            order.insert(rng.randint(k + 1, len(order)), original)
        orders.append(order)
    rounds = []
    for k in range(updates):
        who = list(range(people))
        rng.shuffle(who)
        rounds.append(tuple(orders[p][k] for p in who))
    return Plan(people, updates, tuple(rounds))


def _interleave(queues: list[list[Send]], rng: random.Random) -> list[Send]:
    """A random merge that keeps each queue's order."""
    out: list[Send] = []
    queues = [q for q in queues if q]
    while queues:
        weights = [len(q) for q in queues]
        q = rng.choices(range(len(queues)), weights)[0]
        out.append(queues[q].pop(0))
        queues = [q for q in queues if q]
    return out


def location_of(send: Send) -> str | None:
    if send.status == "created":
        return None
    return LOCATIONS[(send.person + send.parcel + send.step) % len(LOCATIONS)]


def eta_of(send: Send, base_ms: int) -> int | None:
    if send.status in ("delivered", "returned"):
        return None
    return base_ms + (send.parcel + len(STATUS_PATH)) * STEP_MS


def detail_of(send: Send, arm: str) -> str:
    """The update's detail: its token, which the card shows (``arm``: ``W`` or ``D``)."""
    return f"scan {arm}{send.token}"


def update_of(send: Send, arm: str, base_ms: int) -> Update:
    return Update(send.status, send.at, location_of(send), eta_of(send, base_ms), detail_of(send, arm))


@attrs.frozen
class Effect:
    """What the module does with an update: ``card`` (post the parcel's card), ``edit`` (edit
    it), ``none`` (a replay); ``alert``: it also sends the notifying reply."""

    action: str
    alert: bool


class Mirror:
    """The module's decisions for the updates of one arm's parcels, fed in the order sent."""

    def __init__(self) -> None:
        self.histories: dict[tuple[int, int], list[Update]] = {}

    def apply(self, send: Send, update: Update) -> Effect:
        history = self.histories.get(send.shipment_key)
        if history is None:
            self.histories[send.shipment_key] = [update]
            current = parcel_state([update]).current
            return Effect("card", alert_for(None, current))
        if any(u.status == update.status and u.at == update.at for u in history):
            return Effect("none", False)
        previous = parcel_state(history).current
        history.append(update)
        current = parcel_state(history).current
        changed = previous.key != current.key
        return Effect("edit", changed and alert_for(previous, current))

    def updates(self, send: Send) -> Sequence[Update]:
        return self.histories[send.shipment_key]
