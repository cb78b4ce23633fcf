"""Coarse location cells (geohashes) and distance bands computed from cells alone: pure.

The server turns a position into its cell at once and keeps only the cell: everything here
works on cells, never on coordinates, so nothing downstream can be finer than a cell. Encoding
and adjacency are pygeohash's (``encode``, ``get_adjacent``, ``decode_exactly``).
"""

from __future__ import annotations

import math
from functools import lru_cache

import attrs
import pygeohash

KM_PER_DEGREE = 111.195  # one degree of latitude (mean Earth radius 6371.0 km)

# Band edges in km: a band says "between these", never a distance.
BAND_EDGES_KM = (1, 5, 10, 20, 50)


@attrs.frozen(order=True)
class Band:
    index: int  # 0 is the nearest band
    label: str


def _labels() -> tuple[str, ...]:
    labels = [f"< {BAND_EDGES_KM[0]} km"]
    labels += [f"{lo}–{hi} km" for lo, hi in zip(BAND_EDGES_KM, BAND_EDGES_KM[1:], strict=False)]
    labels.append(f"> {BAND_EDGES_KM[-1]} km")
    return tuple(labels)


BAND_LABELS = _labels()


def cell_of(latitude: float, longitude: float, precision: int) -> str:
    """The cell holding a position (checked by the caller: finite, in range)."""
    return str(pygeohash.encode(float(latitude), float(longitude), precision))


def region_of(cell: str, precision: int) -> str:
    """The coarser cell (a prefix) that contains ``cell``: shakes pair within one."""
    return cell[:precision]


@lru_cache(maxsize=65_536)
def neighbourhood(cell: str) -> tuple[str, ...]:
    """``cell`` and the up to eight cells around it (none beyond a pole; across the
    antimeridian the cells wrap, as the grid does)."""
    centre = pygeohash.decode_exactly(cell)
    north = centre.latitude + centre.latitude_error < 90.0
    south = centre.latitude - centre.latitude_error > -90.0
    rows = [cell]
    if north:
        rows.append(pygeohash.get_adjacent(cell, "top"))
    if south:
        rows.append(pygeohash.get_adjacent(cell, "bottom"))
    found = []
    for row in rows:
        found += [row, pygeohash.get_adjacent(row, "left"), pygeohash.get_adjacent(row, "right")]
    return tuple(dict.fromkeys(found))  # tiny grids near the poles can repeat a cell


@lru_cache(maxsize=65_536)
def _centre_and_size(cell: str) -> tuple[float, float, float, float]:
    """(latitude, longitude) of the cell's centre, and its height and width in km."""
    c = pygeohash.decode_exactly(cell)
    height = 2 * c.latitude_error * KM_PER_DEGREE
    width = 2 * c.longitude_error * KM_PER_DEGREE * math.cos(math.radians(c.latitude))
    return c.latitude, c.longitude, height, width


def cell_size_km(cell: str) -> tuple[float, float]:
    """The cell's height and width in km (what a person is told was kept of their position)."""
    _, _, height, width = _centre_and_size(cell)
    return height, width


def _haversine_km(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    a = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * 6371.0 * math.asin(min(1.0, math.sqrt(a)))


@lru_cache(maxsize=65_536)
def band_between(cell_a: str, cell_b: str) -> Band:
    """The distance band between two people known only by their cells.

    The estimate is the distance between the cells' centres, but never less than half a cell's
    diagonal (two people in one cell are about that far apart on average): so people in one 5 km
    cell are "1–5 km" apart, not "< 1 km", and the band never claims more precision than the
    cells have. Two people in the same cell, or in cells the same distance apart, always get the
    same band."""
    lat_a, lon_a, height, width = _centre_and_size(cell_a)
    lat_b, lon_b, _, _ = _centre_and_size(cell_b)
    estimate = max(_haversine_km(lat_a, lon_a, lat_b, lon_b), 0.5 * math.hypot(height, width))
    for index, edge in enumerate(BAND_EDGES_KM):
        if estimate < edge:
            return Band(index, BAND_LABELS[index])
    return Band(len(BAND_EDGES_KM), BAND_LABELS[-1])
