"""``bench.discovery_plan``: the synthetic city of ``bench discovery``."""

from __future__ import annotations

import math

from bench.discovery_plan import CENTRE, CITY_KM, city_positions, offset, rate, synthetic_rows, viewer_positions
from synapse_modules.discovery.cells import KM_PER_DEGREE


def _km_from_centre(lat: float, lon: float) -> tuple[float, float]:
    north = (lat - CENTRE[0]) * KM_PER_DEGREE
    east = (lon - CENTRE[1]) * KM_PER_DEGREE * math.cos(math.radians(CENTRE[0]))
    return north, east


def test_everyone_is_inside_the_city_and_denser_in_the_middle() -> None:
    positions = list(city_positions(20_000, seed=1))
    offsets = [_km_from_centre(*p) for p in positions]
    assert all(abs(n) <= CITY_KM / 2 + 1e-6 and abs(e) <= CITY_KM / 2 + 1e-6 for n, e in offsets)
    middle = sum(abs(n) <= 5 and abs(e) <= 5 for n, e in offsets)
    # 100 of the 1,600 square km hold far more than their 1/16 share.
    assert middle > 3 * len(positions) / 16


def test_the_city_is_the_same_for_a_seed() -> None:
    assert list(city_positions(100, seed=4)) == list(city_positions(100, seed=4))
    assert list(city_positions(100, seed=4)) != list(city_positions(100, seed=5))


def test_viewers_stand_from_the_centre_outwards() -> None:
    viewers = viewer_positions(20)
    distances = [math.hypot(*_km_from_centre(*v)) for v in viewers]
    assert distances[0] < 1e-6
    assert distances == sorted(distances)
    assert distances[-1] < CITY_KM / 2


def test_offset_is_in_kilometres() -> None:
    north, east = _km_from_centre(*offset(3.0, -4.0))
    assert abs(north - 3.0) < 1e-9 and abs(east + 4.0) < 1e-9


def test_synthetic_rows_have_unique_ids_on_the_server_and_coarse_cells() -> None:
    rows = list(synthetic_rows(1000, "bench.test", "ab12", 6))
    assert len({r[0] for r in rows}) == 1000
    assert all(r[0].startswith("@synab12_") and r[0].endswith(":bench.test") for r in rows)
    assert all(len(r[4]) == 6 for r in rows)
    assert len({r[4] for r in rows}) > 50  # spread over many cells


def test_rate() -> None:
    assert rate(300, 1.5) == 200.0
    assert rate(10, 0) == 0.0
