"""Discovery's pure parts: the pairing engine, cells and distance bands, input checks, limits, config."""

from __future__ import annotations

import math
import random

import pygeohash
import pytest
from synapse.api.errors import SynapseError
from synapse.config import ConfigError

from synapse_modules.discovery import Discovery
from synapse_modules.discovery.cells import BAND_LABELS, band_between, cell_of, neighbourhood, region_of
from synapse_modules.discovery.pairing import Entrant, blocked_predicate, pair_at_random
from synapse_modules.discovery.rules import (
    DAY_MS,
    daily_retry_after,
    parse_location,
    parse_profile,
    parse_text,
    parse_user_id,
    rate_decision,
)

# -- the pairing engine -----------------------------------------------------------------------


def _check_pairs(pairs: list[tuple[str, str]], entrants: list[Entrant]) -> None:
    seen = [u for pair in pairs for u in pair]
    assert len(seen) == len(set(seen)), "someone was paired twice"
    regions = {e.user_id: e.region for e in entrants}
    for a, b in pairs:
        assert a != b
        if regions[a] is not None and regions[b] is not None:
            assert regions[a] == regions[b], (a, b)


def test_everyone_is_paired_once_when_the_numbers_allow() -> None:
    entrants = [Entrant(f"@u{i}:x") for i in range(10)]
    pairs = pair_at_random(entrants, rng=random.Random(1))
    _check_pairs(pairs, entrants)
    assert len(pairs) == 5


def test_an_odd_one_out_stays_alone_and_one_entrant_makes_no_pair() -> None:
    assert len(pair_at_random([Entrant(f"@u{i}:x") for i in range(7)], rng=random.Random(2))) == 3
    assert pair_at_random([Entrant("@only:x")]) == []
    assert pair_at_random([]) == []


def test_someone_listed_twice_counts_once() -> None:
    pairs = pair_at_random([Entrant("@a:x"), Entrant("@a:x"), Entrant("@b:x")], rng=random.Random(3))
    assert sorted(pairs[0]) == ["@a:x", "@b:x"] and len(pairs) == 1


def test_two_people_who_both_shared_a_location_pair_only_in_the_same_region() -> None:
    entrants = [Entrant("@sh1:x", "wtw3"), Entrant("@bj1:x", "wx4g"), Entrant("@sh2:x", "wtw3"),
                Entrant("@bj2:x", "wx4g")]
    for seed in range(50):
        pairs = pair_at_random(entrants, rng=random.Random(seed))
        assert sorted(sorted(p) for p in pairs) == [["@bj1:x", "@bj2:x"], ["@sh1:x", "@sh2:x"]]


def test_different_regions_never_pair_but_someone_without_a_location_pairs_with_anyone() -> None:
    assert pair_at_random([Entrant("@a:x", "wtw3"), Entrant("@b:x", "wx4g")]) == []
    for seed in range(20):
        pairs = pair_at_random([Entrant("@a:x", "wtw3"), Entrant("@b:x", "wx4g"), Entrant("@c:x", None)],
                               rng=random.Random(seed))
        assert len(pairs) == 1 and "@c:x" in pairs[0]


def test_blocked_people_are_never_paired() -> None:
    blocked = blocked_predicate([("@a:x", "@b:x")])
    for seed in range(50):
        pairs = pair_at_random([Entrant("@a:x"), Entrant("@b:x")], blocked, random.Random(seed))
        assert pairs == []
        pairs = pair_at_random([Entrant("@a:x"), Entrant("@b:x"), Entrant("@c:x"), Entrant("@d:x")], blocked,
                               random.Random(seed))
        assert len(pairs) == 2 and {frozenset(p) for p in pairs}.isdisjoint({frozenset(("@a:x", "@b:x"))})


def test_pairing_is_random() -> None:
    entrants = [Entrant(f"@u{i}:x") for i in range(4)]
    partners = {dict((a, b) for p in pair_at_random(entrants) for a, b in (p, p[::-1]))["@u0:x"]
                for _ in range(200)}
    assert partners == {"@u1:x", "@u2:x", "@u3:x"}


def test_a_window_of_10000_with_blocks_pairs_everyone_it_can() -> None:
    # (How fast is for the benchmark: the engine is fed such a window directly there.)
    rng = random.Random(7)
    entrants = [Entrant(f"@u{i}:x", None if i % 3 == 0 else f"r{i % 40}") for i in range(10_000)]
    blocked = blocked_predicate([(f"@u{i}:x", f"@u{j}:x") for i in range(0, 200) for j in range(0, 200) if i != j])
    pairs = pair_at_random(entrants, blocked, rng)
    _check_pairs(pairs, entrants)
    assert not any(blocked(a, b) for a, b in pairs)
    assert len(pairs) == 5000


# -- cells and bands --------------------------------------------------------------------------

SHANGHAI = (31.230416789, 121.473701930)


def test_a_position_becomes_a_cell_of_the_configured_precision() -> None:
    cell = cell_of(*SHANGHAI, 6)
    assert cell == pygeohash.encode(*SHANGHAI, 6) and len(cell) == 6
    assert region_of(cell, 4) == cell[:4]


def test_the_neighbourhood_is_the_cell_and_the_eight_around_it() -> None:
    cell = cell_of(*SHANGHAI, 6)
    around = neighbourhood(cell)
    assert len(around) == 9 and around[0] == cell
    lat, lon = pygeohash.decode(cell)
    c = pygeohash.decode_exactly(cell)
    for dlat in (-2, 0, 2):
        for dlon in (-2, 0, 2):
            assert cell_of(lat + dlat * c.latitude_error, lon + dlon * c.longitude_error, 6) in around


def test_the_neighbourhood_stops_at_the_poles_and_wraps_at_the_antimeridian() -> None:
    north = cell_of(89.999, 0.0, 6)
    assert len(neighbourhood(north)) == 6
    east = cell_of(0.0, 179.9999, 6)
    assert cell_of(0.0, -179.9999, 6) in neighbourhood(east)


def test_bands_come_from_cells_only_nearest_first() -> None:
    cell = cell_of(*SHANGHAI, 6)
    assert band_between(cell, cell).label == "< 1 km"
    bands = sorted(band_between(cell, other) for other in neighbourhood(cell))
    assert bands[0].label == "< 1 km" and bands[-1].label == "1–5 km"
    far = cell_of(31.30, 121.473701930, 6)  # about 8 km north
    assert band_between(cell, far).label == "5–10 km"
    assert band_between(cell, cell_of(39.9, 116.4, 6)).label == BAND_LABELS[-1]


def test_the_band_never_claims_more_precision_than_the_cells_have() -> None:
    coarse = cell_of(*SHANGHAI, 5)  # about 4.9 km square: people in one cell may be 6 km apart
    assert band_between(coarse, coarse).label == "1–5 km"


# -- input checks -----------------------------------------------------------------------------


@pytest.mark.parametrize("body, field", [
    ({"longitude": 1}, "latitude"),
    ({"latitude": "31.2", "longitude": 1}, "latitude"),
    ({"latitude": True, "longitude": 1}, "latitude"),
    ({"latitude": 91, "longitude": 1}, "latitude"),
    ({"latitude": -90.5, "longitude": 1}, "latitude"),
    ({"latitude": math.nan, "longitude": 1}, "latitude"),
    ({"latitude": 1, "longitude": math.inf}, "longitude"),
    ({"latitude": 1, "longitude": 180.0001}, "longitude"),
    ({"latitude": 1, "longitude": None}, "longitude"),
    ({"latitude": 1, "longitude": 2, "accuracy": 3}, "accuracy"),
])
def test_a_bad_position_names_its_field_and_never_its_value(body: dict, field: str) -> None:
    with pytest.raises(SynapseError) as e:
        parse_location(body)
    assert e.value.code == 400 and f"'{field}'" in e.value.msg
    for value in body.values():
        if isinstance(value, float) and math.isfinite(value):
            assert str(value) not in e.value.msg


def test_a_good_position_is_read_as_floats() -> None:
    assert parse_location({"latitude": 90, "longitude": -180}) == (90.0, -180.0)


def test_profile_fields_are_checked() -> None:
    assert parse_profile({"enabled": False}).fields == {}
    change = parse_profile({"enabled": True, "name": " Li ", "gender": None, "age_range": "25-34"})
    assert change.enabled and change.fields == {"name": "Li", "gender": None, "age_range": "25-34"}
    for body, field in (({}, "enabled"), ({"enabled": "yes"}, "enabled"), ({"enabled": True, "name": ""}, "name"),
                        ({"enabled": True, "name": "x" * 65}, "name"), ({"enabled": True, "gender": "m"}, "gender"),
                        ({"enabled": True, "age_range": "16-17"}, "age_range"), ({"enabled": True, "x": 1}, "x")):
        with pytest.raises(SynapseError) as e:
            parse_profile(body)
        assert e.value.code == 400 and f"'{field}'" in e.value.msg


def test_an_over_long_text_is_a_400_naming_the_field() -> None:
    assert parse_text({"text": "x" * 1000}, "text", 1000) == "x" * 1000
    with pytest.raises(SynapseError) as e:
        parse_text({"text": "x" * 1001}, "text", 1000)
    assert e.value.code == 400 and "'text'" in e.value.msg
    with pytest.raises(SynapseError):
        parse_text({"text": "  "}, "text", 1000)
    assert parse_text({}, "text", 10, required=False) is None


def test_user_ids_are_checked() -> None:
    assert parse_user_id({"user_id": "@a:b.c"}) == "@a:b.c"
    for value in ("a:b", "@a", 5, None, "@" + "a" * 300 + ":b"):
        with pytest.raises(SynapseError):
            parse_user_id({"user_id": value})


# -- limits -----------------------------------------------------------------------------------


def test_the_rate_limit_allows_a_burst_then_one_per_interval() -> None:
    tat, now = None, 1_000_000
    for _ in range(3):
        decision = rate_decision(tat, now, burst=3, interval_ms=1000)
        assert decision.allowed
        tat = decision.tat
    refused = rate_decision(tat, now, 3, 1000)
    assert not refused.allowed and refused.retry_after_ms == 1000
    assert rate_decision(tat, now + 1000, 3, 1000).allowed


def test_the_daily_limit_counts_a_rolling_day() -> None:
    now = 10 * DAY_MS
    assert daily_retry_after([now - 10, now - 20], now, 3) is None
    assert daily_retry_after([now - 10, now - 20, now - 30], now, 3) == DAY_MS - 30
    assert daily_retry_after([now - DAY_MS, now - 10, now - 20], now, 3) is None


# -- config -----------------------------------------------------------------------------------


def test_defaults() -> None:
    config = Discovery.parse_config({})
    assert (config.cell_precision, config.location_ttl_s, config.shake_window_ms) == (6, 7200, 5000)
    assert config.bottle_max_chars == 1000 and config.dm_encrypted is True
    assert config.rate_limits["nearby"].burst == 20


@pytest.mark.parametrize("config, path", [
    ({"cell_precision": 9}, ("cell_precision",)),
    ({"cell_precision": 6, "region_precision": 7}, ("region_precision",)),
    ({"shake_window_ms": 50}, ("shake_window_ms",)),
    ({"dm_encrypted": "yes"}, ("dm_encrypted",)),
    ({"service_accounts": ["@bot:x", "bot"]}, ("service_accounts", "<item 1>")),
    ({"rate_limits": {"nearbyy": {}}}, ("rate_limits", "nearbyy")),
    ({"rate_limits": {"nearby": {"burst": 0}}}, ("rate_limits", "nearby", "burst")),
    ({"locaton_ttl_s": 5}, ("locaton_ttl_s",)),
])
def test_config_errors_name_the_key_path(config: dict, path: tuple) -> None:
    with pytest.raises(ConfigError) as e:
        Discovery.parse_config(config)
    assert tuple(e.value.path) == path
