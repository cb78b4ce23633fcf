"""What ``bench discovery`` puts in the module's tables and where its people stand: plain data.

The city: a square ``CITY_KM`` on a side around ``CENTRE`` (Hangzhou), people denser towards the
middle as in a real city: ``DENSE_SHARE`` of them normally distributed around the centre
(``SPREAD_KM``), the rest uniform over the square. Deterministic for a seed.
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterator

from synapse_modules.discovery.cells import KM_PER_DEGREE, cell_of

CENTRE = (30.2741, 120.1551)
CITY_KM = 40.0
SPREAD_KM = 6.0
DENSE_SHARE = 0.7
GENDERS = ("female", "male", None)
AGE_RANGES = ("18-24", "25-34", "35-44", "45-54", None)


def offset(km_north: float, km_east: float) -> tuple[float, float]:
    """The position that far from the centre."""
    lat = CENTRE[0] + km_north / KM_PER_DEGREE
    lon = CENTRE[1] + km_east / (KM_PER_DEGREE * math.cos(math.radians(CENTRE[0])))
    return lat, lon


def city_positions(n: int, seed: int = 0) -> Iterator[tuple[float, float]]:
    rng = random.Random(seed)
    half = CITY_KM / 2
    for _ in range(n):
        if rng.random() < DENSE_SHARE:
            while True:
                north, east = rng.gauss(0, SPREAD_KM), rng.gauss(0, SPREAD_KM)
                if abs(north) <= half and abs(east) <= half:
                    break
        else:
            north, east = rng.uniform(-half, half), rng.uniform(-half, half)
        yield offset(north, east)


def viewer_positions(n: int) -> list[tuple[float, float]]:
    """Where the real viewers stand: from the centre out to the edge of the dense part, each
    in another direction, so some see a crowd around them and some only a few."""
    out = []
    for i in range(n):
        distance = (SPREAD_KM * 3) * i / max(1, n - 1)
        angle = i * 2.399963  # the golden angle: directions spread evenly
        out.append(offset(distance * math.cos(angle), distance * math.sin(angle)))
    return out


def synthetic_rows(n: int, server_name: str, tag: str, precision: int,
                   seed: int = 0) -> Iterator[tuple[str, str, str | None, str | None, str]]:
    """``(user_id, name, gender, age_range, cell)`` of ``n`` opted-in synthetic people."""
    rng = random.Random(seed + 1)
    for i, (lat, lon) in enumerate(city_positions(n, seed)):
        yield (f"@syn{tag}_{i}:{server_name}", f"路人{i}", rng.choice(GENDERS), rng.choice(AGE_RANGES),
               cell_of(lat, lon, precision))


def rate(completed: int, seconds: float) -> float:
    """Completed requests per second of a closed-loop phase."""
    return round(completed / seconds, 1) if seconds > 0 else 0.0
