"""The dev stack's benchmark options: a stock Synapse carrying a bridge's registration, and the
transaction log the ``transactions`` benchmark counts."""

from __future__ import annotations

import pytest
import yaml

from wangxin_stack.options import OptionError, StackOptions
from wangxin_stack.render import render_stack
from wangxin_stack.state import StackState


def _render(tmp_path, **kwargs):
    options = StackOptions(dir=str(tmp_path / "stack"), port=18008, server_name="dev.test", **kwargs)
    options.validate()
    (tmp_path / "stack").mkdir()
    rendered = render_stack(options, StackState.load_or_create(options.dir))
    with open(rendered.homeserver_config, encoding="utf-8") as f:
        homeserver = yaml.safe_load(f)
    with open(tmp_path / "stack" / "log.config", encoding="utf-8") as f:
        log_config = yaml.safe_load(f)
    return homeserver, log_config


def test_a_stock_stack_can_carry_an_appservice_registration_and_log_its_transactions(tmp_path) -> None:
    registration = tmp_path / "bridge.yaml"
    registration.write_text("id: wangxin\nurl: null\n")
    homeserver, log_config = _render(tmp_path, modules=False, bridge=False, bot=False,
                                     appservice_registration=str(registration), log_transactions=True)
    assert homeserver["app_service_config_files"] == [str(registration)]
    assert "modules" not in homeserver or not homeserver["modules"]
    assert log_config["loggers"]["synapse.storage.txn"]["level"] == "DEBUG"


def test_by_default_no_transaction_is_logged_and_stock_registers_no_appservice(tmp_path) -> None:
    homeserver, log_config = _render(tmp_path, modules=False, bridge=False, bot=False)
    assert "app_service_config_files" not in homeserver
    assert "synapse.storage.txn" not in log_config["loggers"]


def test_a_registration_option_is_refused_where_it_would_mean_nothing(tmp_path) -> None:
    registration = tmp_path / "bridge.yaml"
    registration.write_text("id: wangxin\n")
    with pytest.raises(OptionError, match="goes with --stock"):
        StackOptions(dir=str(tmp_path), port=18008, server_name="dev.test",
                     appservice_registration=str(registration)).validate()
    with pytest.raises(OptionError, match="no such file"):
        StackOptions(dir=str(tmp_path), port=18008, server_name="dev.test", modules=False, bridge=False, bot=False,
                     appservice_registration=str(tmp_path / "missing.yaml")).validate()


def test_the_benchmark_registers_the_bridge_with_synapse_without_a_url(tmp_path) -> None:
    from synapse.config.appservice import load_appservices

    from bench.core import registration_without_url
    from bridges.registration import build_registration, new_token, render_registration

    source, target = tmp_path / "registration.yaml", tmp_path / "copy.yaml"
    source.write_text(render_registration(build_registration(
        appservice_id="wangxin", url="http://127.0.0.1:29330", as_token=new_token(), hs_token=new_token(),
        server_name="example.org", bot_localpart="wangxin", ghost_prefix="wx_")))
    registration_without_url(str(source), str(target))
    (service,) = load_appservices("example.org", [str(target)])
    assert service.url is None  # Synapse sends it nothing ...
    assert service.is_interested_in_user("@wx_8613800138000:example.org")  # ... but still checks interest
