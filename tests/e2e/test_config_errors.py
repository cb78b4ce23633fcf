"""A wrong config stops each process at once with a sentence naming the key.

What is checked happens before any database is opened, so these run on the first backend only."""

from __future__ import annotations

import subprocess
import sys

import pytest
import yaml

from tests.harness.stack import RunningStack

pytestmark = pytest.mark.backend_independent


def _run(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, *argv], capture_output=True, text=True, timeout=120)


def test_synapse_names_a_wrong_module_option(stack: RunningStack, tmp_path) -> None:
    config = yaml.safe_load(open(stack.info["homeserver_config"]))
    config["modules"][0]["config"]["bridge_bot"] = "not-a-user-id"
    # A copy of the real config on other ports, so the running stack is not disturbed.
    config["listeners"] = [{"port": 1, "type": "http", "resources": [{"names": ["client"]}]}]
    path = tmp_path / "homeserver.yaml"
    path.write_text(yaml.safe_dump(config))
    result = _run("-m", "synapse.app.homeserver", "-c", str(path))
    assert result.returncode == 1
    assert "modules.<item 0>.config.bridge_bot" in result.stderr
    assert "expected a Matrix user id" in result.stderr


def test_synapse_names_an_unknown_module_option(stack: RunningStack, tmp_path) -> None:
    config = yaml.safe_load(open(stack.info["homeserver_config"]))
    config["modules"][0]["config"]["bridge_bto"] = "@x:y"
    path = tmp_path / "homeserver.yaml"
    path.write_text(yaml.safe_dump(config))
    result = _run("-m", "synapse.app.homeserver", "-c", str(path))
    assert result.returncode == 1
    assert "config.bridge_bto" in result.stderr and "unknown option" in result.stderr


def test_bridge_names_a_missing_key(stack: RunningStack, tmp_path) -> None:
    config = yaml.safe_load(open(stack.info["bridge"]["config"]))
    del config["appservice"]["hs_token"]
    path = tmp_path / "bridge.yaml"
    path.write_text(yaml.safe_dump(config))
    result = _run("-m", "bridges", "run", "-c", str(path))
    assert result.returncode == 2
    assert "key 'appservice.hs_token': is missing" in result.stderr
    assert "Traceback" not in result.stderr


def test_bridge_reports_a_port_in_use(stack: RunningStack, tmp_path) -> None:
    config = yaml.safe_load(open(stack.info["bridge"]["config"]))  # the running bridge holds this port
    config["database"] = {"kind": "sqlite", "path": str(tmp_path / "b.db")}
    path = tmp_path / "bridge.yaml"
    path.write_text(yaml.safe_dump(config))
    result = _run("-m", "bridges", "run", "-c", str(path))
    assert result.returncode == 1
    assert "already in use" in result.stderr


def test_merchant_bot_names_a_wrong_key(tmp_path) -> None:
    path = tmp_path / "bot.yaml"
    path.write_text(yaml.safe_dump({"homeserver_url": "ftp://x", "user_id": "@b:x", "password": "p",
                                    "store_dir": str(tmp_path)}))
    result = _run("-m", "bots.merchant", "-c", str(path))
    assert result.returncode == 2
    assert "key 'homeserver_url': expected an http(s) URL" in result.stderr
