"""The documented templates at the repository root stay true to what the code generates."""

from __future__ import annotations

import os

import yaml

from bridges.registration import build_registration, new_token, render_registration, template_text

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def test_root_appservice_yaml_is_the_generated_template() -> None:
    with open(os.path.join(ROOT, "appservice.yaml"), encoding="utf-8") as f:
        assert f.read() == template_text()


def test_synapse_accepts_a_generated_registration(tmp_path) -> None:
    from synapse.config.appservice import load_appservices

    registration = build_registration(
        appservice_id="wangxin", url="http://127.0.0.1:29330", as_token=new_token(), hs_token=new_token(),
        server_name="example.org", bot_localpart="wangxin", ghost_prefix="wx_",
    )
    path = tmp_path / "reg.yaml"
    path.write_text(render_registration(registration))
    (service,) = load_appservices("example.org", [str(path)])
    assert service.is_interested_in_user("@wx_8613800138000:example.org")
    assert not service.is_interested_in_user("@wx_x:example.org.evil")
    assert not service.is_interested_in_user("@alice:example.org")
    assert not service.is_rate_limited()


def test_generated_tokens_are_fresh_and_strong() -> None:
    tokens = {new_token() for _ in range(50)}
    assert len(tokens) == 50 and all(len(t) >= 40 for t in tokens)


def test_homeserver_example_modules_parse_with_their_own_validators() -> None:
    import importlib

    with open(os.path.join(ROOT, "homeserver.yaml.example"), encoding="utf-8") as f:
        config = yaml.safe_load(f)
    assert config["database"]["name"] == "psycopg2"
    assert config["account_threepid_delegates"]["msisdn"].startswith("http://127.0.0.1:")
    for entry in config["modules"]:
        module_path, _, class_name = entry["module"].rpartition(".")
        cls = getattr(importlib.import_module(module_path), class_name)
        cls.parse_config(entry.get("config"))


def test_dev_stack_configures_every_module_the_example_does(tmp_path) -> None:
    from wangxin_stack.options import StackOptions
    from wangxin_stack.render import module_configs

    with open(os.path.join(ROOT, "homeserver.yaml.example"), encoding="utf-8") as f:
        example = {m["module"] for m in yaml.safe_load(f)["modules"]}
    from wangxin_stack.state import StackState

    options = StackOptions(dir=str(tmp_path), port=18008, server_name="dev.test")
    state = StackState.load_or_create(str(tmp_path))
    assert {m["module"] for m in module_configs(options, state)} == example


def test_the_worker_topology_notifies_application_services_from_the_media_worker(tmp_path) -> None:
    """Off the main process and off the generic worker that serves sends: the bridge's interest
    check and stream position shared that worker's reactor with every send (docs/operating.md,
    "Deploying for speed")."""
    from wangxin_stack.options import PostgresDsn, RedisAddress, StackOptions
    from wangxin_stack.render import render_stack
    from wangxin_stack.state import StackState

    options = StackOptions(dir=str(tmp_path / "stack"), port=18008, server_name="dev.test", workers=True,
                           postgres=PostgresDsn.parse("postgresql://postgres@127.0.0.1/none", "--postgres"),
                           redis=RedisAddress.parse("127.0.0.1:6379"))
    options.validate()
    (tmp_path / "stack").mkdir()
    rendered = render_stack(options, StackState.load_or_create(options.dir))
    with open(rendered.homeserver_config, encoding="utf-8") as f:
        homeserver = yaml.safe_load(f)
    media = [w.name for w in rendered.workers if w.role == "media"]
    assert homeserver["notify_appservices_from_worker"] == media[0]
    from wangxin_stack.router import WorkerRouter

    by_role = {w.role: w for w in rendered.workers}
    router = WorkerRouter(options.ports.main_client, by_role["generic"].client_port, by_role["sync"].client_port,
                          by_role["media"].client_port)
    serving = {w.client_port: w.name for w in rendered.workers} | {options.ports.main_client: "main"}
    sends = serving[router.backend_for("/_matrix/client/v3/rooms/!r:dev.test/send/m.room.message/t1")]
    assert homeserver["notify_appservices_from_worker"] not in (sends, "main")
    assert homeserver["stream_writers"]["events"] == [w.name for w in rendered.workers if w.role == "event_persister"]
