"""The pairing engine of a window (shake; issue 23's angle and video queues reuse it): pure.

Everyone who entered a window is paired at random with at most one partner. Two people are
compatible unless ``excluded(a, b)`` says no (a block, a pair already made today) or both have a
region and the regions differ: someone who shared no location (region ``None``) may pair with
anyone. Linear in the number of entrants (a shuffle, then stacks per region), so a window of
10,000 is decided in milliseconds.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterable, Sequence

import attrs

# How many waiting candidates an entrant looks through for one it is not excluded from, before
# it waits itself: exclusions are rare, and a bound keeps a window of mutual blockers linear.
SCAN = 8


@attrs.frozen
class Entrant:
    user_id: str
    region: str | None = None


def _never(a: str, b: str) -> bool:
    return False


def pair_at_random(
    entrants: Iterable[Entrant],
    excluded: Callable[[str, str], bool] = _never,
    rng: random.Random | None = None,
) -> list[tuple[str, str]]:
    """Disjoint pairs of compatible entrants, at random. An entrant listed twice counts once."""
    rng = rng or random.Random()  # seeded from the system's entropy
    unique = list({e.user_id: e for e in reversed(list(entrants))}.values())
    rng.shuffle(unique)
    waiting: dict[str, list[str]] = {}  # region -> its unpaired entrants, in arrival order
    wild: list[str] = []  # entrants without a location
    pairs: list[tuple[str, str]] = []
    for entrant in unique:
        if entrant.region is None:
            wild.append(entrant.user_id)
            continue
        stack = waiting.setdefault(entrant.region, [])
        partner = _take(stack, entrant.user_id, excluded)
        if partner is None:
            stack.append(entrant.user_id)
        else:
            pairs.append((partner, entrant.user_id))
    # Then those left alone in their region (at most one per region, unless exclusions got in
    # the way) with someone without a location, who may pair with anyone; and the rest of
    # those among themselves. In that order nobody stays alone who had a possible partner.
    for stack in waiting.values():
        for me in stack:
            partner = _take(wild, me, excluded)
            if partner is not None:
                pairs.append((partner, me))
    alone: list[str] = []
    for me in wild:
        partner = _take(alone, me, excluded)
        if partner is None:
            alone.append(me)
        else:
            pairs.append((partner, me))
    paired = {u for pair in pairs for u in pair}
    regions = {e.user_id: e.region for e in unique}
    _repair(pairs, [e.user_id for e in unique if e.user_id not in paired], regions, excluded, rng)
    return pairs


def _repair(pairs: list[tuple[str, str]], alone: list[str], regions: dict[str, str | None],
            excluded: Callable[[str, str], bool], rng: random.Random) -> None:
    """Two people left alone who may not pair with each other (a block; the scan bound) may each
    pair with one of a pair made already: alone u and v, paired p and q become (u, p) and
    (v, q). A few tries each, so a window full of blockers stays linear."""
    def ok(a: str, b: str) -> bool:
        ra, rb = regions[a], regions[b]
        return (ra is None or rb is None or ra == rb) and not excluded(a, b)

    waiting = list(alone)
    i = 0
    while i < len(waiting) - 1:
        u = waiting[i]
        found: tuple[str, tuple[int, tuple[str, str], tuple[str, str]] | None] | None = None
        for v in waiting[i + 1:i + 1 + SCAN]:
            if ok(u, v):
                found = (v, None)
                break
            for _ in range(min(SCAN, len(pairs))):
                k = rng.randrange(len(pairs))
                p, q = pairs[k]
                if ok(u, p) and ok(v, q):
                    found = (v, (k, (u, p), (v, q)))
                elif ok(u, q) and ok(v, p):
                    found = (v, (k, (u, q), (v, p)))
                if found:
                    break
            if found:
                break
        if found is None:
            i += 1
            continue
        v, swap = found
        if swap is None:
            pairs.append((u, v))
        else:
            k, first, second = swap
            pairs[k] = first
            pairs.append(second)
        waiting.remove(u)
        waiting.remove(v)


def _take(stack: list[str] | None, me: str, excluded: Callable[[str, str], bool]) -> str | None:
    """Remove and return the most recent entrant of ``stack`` that ``me`` may pair with."""
    if not stack:
        return None
    for i in range(len(stack) - 1, max(-1, len(stack) - 1 - SCAN), -1):
        candidate = stack[i]
        if not excluded(me, candidate):
            del stack[i]
            return candidate
    return None


def blocked_predicate(pairs: Sequence[tuple[str, str]]) -> Callable[[str, str], bool]:
    """``excluded`` for a set of (blocker, blocked) pairs: a block hides each from the other."""
    blocked = {frozenset(p) for p in pairs}
    return lambda a, b: frozenset((a, b)) in blocked
