"""The dev stack's coturn config and the TURN settings it gives Synapse (wangxin_stack/turn.py)."""

from __future__ import annotations

import ipaddress
import os
import stat

import pytest
import yaml

from wangxin_stack import turn
from wangxin_stack.options import PORTS_USED, StackOptions


def _config(**overrides: object) -> dict[str, list[str]]:
    args: dict = {"port": 28016, "relay_ports": (28017, 28027), "secret": "s3cret", "realm": "dev.test",
                  "state_dir": "/stack/coturn"}
    args.update(overrides)
    keys: dict[str, list[str]] = {}
    for line in turn.coturn_config(**args).splitlines():
        if line and not line.startswith("#"):
            key, _, value = line.partition("=")
            keys.setdefault(key, []).append(value)
    return keys


Address = ipaddress.IPv4Address | ipaddress.IPv6Address


def _denied() -> list[tuple[Address, Address]]:
    spans = []
    for value in _config()["denied-peer-ip"]:
        low, _, high = value.partition("-")
        spans.append((ipaddress.ip_address(low), ipaddress.ip_address(high)))
    return spans


def _is_denied(address: str) -> bool:
    ip = ipaddress.ip_address(address)
    return any(low.version == ip.version and low <= ip <= high for low, high in _denied())


def test_loopback_only_with_the_shared_secret_and_no_tls() -> None:
    keys = _config()
    assert keys["listening-ip"] == ["127.0.0.1"] and keys["relay-ip"] == ["127.0.0.1"]
    assert keys["listening-port"] == ["28016"]
    assert (keys["min-port"], keys["max-port"]) == (["28017"], ["28027"])
    assert "use-auth-secret" in keys and keys["static-auth-secret"] == ["s3cret"]
    assert keys["realm"] == ["dev.test"]
    for flag in ("no-tls", "no-dtls", "no-cli", "no-tcp-relay", "no-multicast-peers", "allow-loopback-peers"):
        assert flag in keys, flag
    assert not any(k.startswith(("cert", "pkey", "tls-listening-port", "web-admin")) for k in keys)


def test_logs_and_state_stay_in_the_stack_directory() -> None:
    keys = _config(state_dir="/tmp/x/coturn")
    assert keys["log-file"] == ["stdout"]  # the launcher appends stdout to logs/coturn.log
    assert keys["pidfile"] == ["/tmp/x/coturn/turnserver.pid"] and keys["userdb"] == ["/tmp/x/coturn/turndb"]


def test_the_relay_cannot_reach_private_networks_but_reaches_loopback() -> None:
    for address in ("10.1.2.3", "172.16.0.1", "172.31.255.254", "192.168.1.1", "169.254.169.254", "100.64.0.1",
                    "0.0.0.0", "255.255.255.255", "198.18.0.1", "fd00::1", "fe80::1", "::ffff:10.0.0.1",
                    "::ffff:127.0.0.1", "64:ff9b::a00:1"):
        assert _is_denied(address), address
    for address in ("127.0.0.1", "::1", "8.8.8.8", "1.1.1.1", "2606:4700::1111", "172.32.0.1", "11.0.0.1"):
        assert not _is_denied(address), address


def test_denied_ranges_are_well_formed() -> None:
    for low, high in _denied():
        assert low.version == high.version and low <= high, (low, high)


@pytest.mark.parametrize("relay", [(28010, 28020), (28016, 28016), (28027, 28017), (80, 90)])
def test_a_relay_range_must_be_sane_and_exclude_the_listener(relay: tuple[int, int]) -> None:
    with pytest.raises(ValueError, match="relay ports"):
        turn.coturn_config(port=28016, relay_ports=relay, secret="s", realm="r", state_dir="/s")


@pytest.mark.parametrize("secret", ["", "a\nlistening-ip=0.0.0.0"])
def test_a_secret_cannot_be_empty_or_inject_lines(secret: str) -> None:
    with pytest.raises(ValueError, match="secret"):
        turn.coturn_config(port=28016, relay_ports=(28017, 28027), secret=secret, realm="r", state_dir="/s")


def test_every_port_of_the_stack_is_its_own_and_inside_the_block() -> None:
    ports = StackOptions(dir="/x", port=28000, server_name="dev.test", workers=True).ports
    others = {ports.public, ports.bridge, ports.main_client, ports.main_replication, ports.persister_replication,
              ports.worker_client, ports.sync_client, ports.media_client, ports.coupons}
    relay = set(range(ports.turn_relay[0], ports.turn_relay[1] + 1))
    assert len(others) == 9 and ports.turn not in others and not relay & (others | {ports.turn})
    assert max(relay | others | {ports.turn}) == 28000 + PORTS_USED - 1
    assert len(relay) >= 8  # a call takes a relay per client and transport
    assert ports.in_use(False, turn=True)["the TURN server (coturn)"] == ports.turn
    assert ports.turn not in ports.in_use(True).values()


def _render(tmp_path, monkeypatch, binary: str | None, **options: object):  # type: ignore[no-untyped-def]
    from wangxin_stack import render
    from wangxin_stack.state import StackState

    monkeypatch.setattr(render, "find_binary", lambda: binary)
    o = StackOptions(dir=str(tmp_path / "stack"), port=28000, server_name="dev.test", **options)  # type: ignore[arg-type]
    os.makedirs(o.dir, exist_ok=True)
    state = StackState.load_or_create(o.dir)
    rendered = render.render_stack(o, state)
    with open(rendered.homeserver_config, encoding="utf-8") as f:
        return rendered, yaml.safe_load(f), state


def test_synapse_hands_out_credentials_for_the_stacks_coturn(tmp_path, monkeypatch) -> None:
    from synapse.config.voip import VoipConfig

    rendered, homeserver, state = _render(tmp_path, monkeypatch, "/usr/bin/turnserver")
    setup = rendered.turn
    assert setup is not None and setup.port == 28008 and setup.relay_ports == (28009, 28019)
    assert setup.argv() == ["/usr/bin/turnserver", "-c", setup.config_path]
    assert homeserver["turn_uris"] == ["turn:127.0.0.1:28008?transport=udp", "turn:127.0.0.1:28008?transport=tcp"]
    secret = state.secrets["turn_shared_secret"]
    assert homeserver["turn_shared_secret"] == secret and len(secret) >= 32
    voip = VoipConfig(None)
    voip.read_config(homeserver, allow_secrets_in_config=True)
    assert voip.turn_uris == homeserver["turn_uris"] and voip.turn_user_lifetime == 3600 * 1000
    with open(setup.config_path, encoding="utf-8") as f:
        text = f.read()
    assert f"static-auth-secret={secret}\n" in text and "listening-port=28008\n" in text
    assert stat.S_IMODE(os.stat(setup.config_path).st_mode) == 0o600  # it holds the secret
    assert setup.stack_info() == {"uris": homeserver["turn_uris"], "relay_ports": [28009, 28019]}


def test_without_coturn_or_with_no_turn_synapse_offers_no_turn(tmp_path, monkeypatch) -> None:
    rendered, homeserver, _ = _render(tmp_path, monkeypatch, None)
    assert rendered.turn is None and "turn_uris" not in homeserver and "turn_shared_secret" not in homeserver
    rendered, homeserver, _ = _render(tmp_path, monkeypatch, "/usr/bin/turnserver", turn=False)
    assert rendered.turn is None and "turn_uris" not in homeserver


def test_no_turn_and_stock_options(tmp_path) -> None:
    from wangxin_stack.__main__ import build_parser, options_from_args

    def parse(*args: str) -> StackOptions:
        return options_from_args(build_parser().parse_args(["up", "--dir", str(tmp_path), *args]))

    assert parse().turn is True
    assert parse("--no-turn").turn is False
    assert parse("--stock").turn is False  # Synapse alone, for side-by-side benchmarks


def test_the_production_example_offers_turn_over_udp_tcp_and_tls() -> None:
    from synapse.config.voip import VoipConfig

    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    with open(os.path.join(root, "homeserver.yaml.example"), encoding="utf-8") as f:
        example = yaml.safe_load(f)
    voip = VoipConfig(None)
    voip.read_config(example, allow_secrets_in_config=True)
    assert [u.split(":")[0] for u in voip.turn_uris] == ["turn", "turn", "turns"]
    assert any(u.startswith("turns:") and ":5349" in u for u in voip.turn_uris)
    assert voip.turn_shared_secret and voip.turn_user_lifetime == 3600 * 1000 and voip.turn_allow_guests is False
