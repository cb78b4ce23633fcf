"""The dev stack's test knobs: short module polls and small limits, rendered where each part reads
them, accepted by each part's own validator, and absent (production defaults) unless asked for."""

from __future__ import annotations

import importlib

import pytest
import yaml

from bridges.config import load_config
from wangxin_stack.__main__ import build_parser, options_from_args
from wangxin_stack.options import OptionError, StackOptions, parse_import_limits
from wangxin_stack.render import render_stack
from wangxin_stack.state import StackState


def _render(tmp_path, **kwargs):
    options = StackOptions(dir=str(tmp_path / "stack"), port=18008, server_name="dev.test", **kwargs)
    options.validate()
    (tmp_path / "stack").mkdir()
    rendered = render_stack(options, StackState.load_or_create(options.dir))
    with open(rendered.homeserver_config, encoding="utf-8") as f:
        homeserver = yaml.safe_load(f)
    modules = {"bcrypt_rounds": homeserver.get("bcrypt_rounds", 12)}  # Synapse's default: 12
    for entry in homeserver["modules"]:
        module_path, _, class_name = entry["module"].rpartition(".")
        cls = getattr(importlib.import_module(module_path), class_name)
        modules[class_name] = cls.parse_config(entry["config"])  # the module's own validator
    assert rendered.bridge_config is not None
    return modules, load_config(rendered.bridge_config)


def test_test_knobs_reach_every_poller_and_limit(tmp_path) -> None:
    modules, bridge = _render(tmp_path, module_poll_ms=100, lookups_per_day=2000, bcrypt_rounds=4,
                              import_limits=parse_import_limits("max_bytes=2097152, max_rows=10000"))
    assert modules["bcrypt_rounds"] == 4
    assert modules["MerchantCircle"].membership_poll_ms == 100
    assert modules["MuteExemptions"].repair_interval_ms == 100
    assert modules["ContactImport"].delivery_interval_ms == 100
    assert modules["ContactImport"].lookups_per_day == 2000
    assert bridge.imports.max_bytes == 2097152 and bridge.imports.max_rows == 10000
    assert bridge.imports.max_phones_per_contact == 10  # what was not overridden keeps its default


def test_without_knobs_every_part_keeps_its_production_default(tmp_path) -> None:
    import attrs

    from bridges.config import ImportsConfig
    from synapse_modules.contact_import import ContactImportConfig
    from synapse_modules.merchant_circle.config import MerchantCircleConfig
    from synapse_modules.mute_exemptions import MuteConfig

    modules, bridge = _render(tmp_path)
    assert modules["bcrypt_rounds"] == 12
    for name, cls in (("MerchantCircle", MerchantCircleConfig), ("MuteExemptions", MuteConfig),
                      ("ContactImport", ContactImportConfig)):
        defaults = {f.name: f.default for f in attrs.fields(cls) if f.default is not attrs.NOTHING}
        for knob in ("membership_poll_ms", "repair_interval_ms", "delivery_interval_ms", "lookups_per_day"):
            if knob in defaults:
                assert getattr(modules[name], knob) == defaults[knob], (name, knob)
    assert bridge.imports == ImportsConfig()


def test_the_knobs_are_command_line_options(tmp_path) -> None:
    args = build_parser().parse_args(["up", "--dir", str(tmp_path / "s"), "--module-poll-ms", "100",
                                      "--bcrypt-rounds", "4", "--lookups-per-day", "2000",
                                      "--import-limits", "max_rows=10000"])
    options = options_from_args(args)
    assert options.module_poll_ms == 100 and options.lookups_per_day == 2000 and options.bcrypt_rounds == 4
    assert options.import_limits == (("max_rows", 10000),)


@pytest.mark.parametrize("text, message", [
    ("max_rowz=5", "unknown limit 'max_rowz'"),
    ("default_region=CN", "unknown limit 'default_region'"),  # not a number: the config file sets it
    ("max_rows=0", "max_rows needs a positive whole number"),
    ("max_bytes=1.5", "max_bytes needs a positive whole number"),
])
def test_bad_import_limits_are_named(text: str, message: str) -> None:
    with pytest.raises(OptionError, match=message):
        parse_import_limits(text)


@pytest.mark.parametrize("kwargs, message", [
    ({"module_poll_ms": 10}, "--module-poll-ms: expected 50..60000"),  # the modules refuse less than 50
    ({"lookups_per_day": 0}, "--lookups-per-day: expected a positive number"),
    ({"bcrypt_rounds": 3}, "--bcrypt-rounds: bcrypt takes 4..31 rounds"),
])
def test_bad_knob_values_are_named(tmp_path, kwargs: dict, message: str) -> None:
    with pytest.raises(OptionError, match=message):
        StackOptions(dir=str(tmp_path), port=18008, server_name="dev.test", **kwargs).validate()


def test_discovery_options_reach_the_module_and_bad_ones_are_named(tmp_path) -> None:
    from wangxin_stack.options import parse_discovery_options

    options = parse_discovery_options("shake_window_ms=1500, location_ttl_s=30,throws_per_day=3")
    modules, _ = _render(tmp_path, module_poll_ms=100, discovery_options=options)
    discovery = modules["Discovery"]
    assert (discovery.shake_window_ms, discovery.location_ttl_s, discovery.throws_per_day) == (1500, 30, 3)
    assert discovery.cleanup_interval_ms == 1000 and discovery.picks_per_day == 20
    assert "@merchantbot:dev.test" in discovery.service_accounts
    for text, message in (("shake_windw_ms=5", "unknown option 'shake_windw_ms'"),
                          ("rate_limits=5", "unknown option 'rate_limits'"),
                          ("location_ttl_s=2.5", "location_ttl_s needs a whole number")):
        with pytest.raises(OptionError, match=message):
            parse_discovery_options(text)
