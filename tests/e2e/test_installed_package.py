"""What operators install: the wheel, in a clean venv outside this tree, runs every deployable.

The modules go into "Synapse's venv" (Synapse plus the wheel without extras: none of the
bridge's or the bots' libraries); Synapse starts with the ``modules:`` of
``homeserver.yaml.example`` and reports every module loaded; then the same venv gets
``wangxin[bridge,bots]`` and the ``wangxin-bridge``, ``wangxin-merchant-bot``,
``wangxin-parcels-bot`` and ``wangxin-discovery-bot`` entry points run against that Synapse.
Nothing puts the source tree on a path: every process runs with its working directory outside
the repository and without ``PYTHONPATH``.
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from importlib.metadata import version
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml

from tests.harness import services
from tests.harness.http import eventually
from wangxin_stack.homeserver_admin import registration_mac

REPO = Path(__file__).resolve().parents[2]
MODULE_FEATURES = ["accounts", "contact_import", "discovery", "merchant_circle", "mute_exemptions", "parcels"]
# What only the bridge and the bots need: none of it belongs in Synapse's venv (segno does: the
# accounts module draws the QR codes of follow links).
NOT_FOR_SYNAPSE = ["twilio", "nio", "vobject"]
BUILD_WARNINGS = ("Warning", "warning:", "Package would be ignored")


def _run(argv: list[str], cwd: Path, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME")}
    result = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert result.returncode == 0, f"{' '.join(argv)} failed:\n{result.stdout}\n{result.stderr}"
    return result


class Venv:
    def __init__(self, path: Path, cwd: Path):
        self.path = path
        self.cwd = cwd
        _run([sys.executable, "-m", "venv", str(path)], cwd)

    def bin(self, name: str) -> str:
        return str(self.path / "bin" / name)

    def pip_install(self, *requirements: str) -> None:
        _run([self.bin("python"), "-m", "pip", "--disable-pip-version-check", "-q", "install", *requirements],
             self.cwd)

    def importable(self, module: str) -> bool:
        code = f"import importlib.util, sys; sys.exit(0 if importlib.util.find_spec({module!r}) else 1)"
        env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
        return subprocess.run([self.bin("python"), "-c", code], cwd=self.cwd, env=env).returncode == 0

    def module_file(self, module: str) -> str:
        return _run([self.bin("python"), "-c", f"import {module}; print({module}.__file__)"], self.cwd).stdout.strip()

    def start(self, argv: list[str], log: Path) -> subprocess.Popen[bytes]:
        env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
        with open(log, "ab") as out:
            return subprocess.Popen(argv, cwd=self.cwd, env=env, stdout=out, stderr=subprocess.STDOUT)


def build_wheel(out: Path) -> Path:
    """The wheel, built as ``pip wheel .`` builds it in a fresh checkout (a copy of the tree
    without the venv, the build folder or stacks, so nothing stale gets in); it must not warn."""
    source = out / "source"
    shutil.copytree(REPO, source, ignore=shutil.ignore_patterns(
        ".git", ".venv", ".stack*", "build", "*.egg-info", "__pycache__", ".*_cache", "bench"))
    result = _run([sys.executable, "-m", "pip", "--disable-pip-version-check", "wheel", "--no-deps",
                   "--no-build-isolation", "-w", str(out), str(source)], out)
    noise = [line for line in (result.stdout + result.stderr).splitlines()
             if any(w in line for w in BUILD_WARNINGS) and "pip version" not in line]
    assert not noise, "the project's packaging warns:\n" + "\n".join(noise)
    wheels = list(out.glob("wangxin-*.whl"))
    assert len(wheels) == 1, wheels
    return wheels[0]


def homeserver_config(workdir: Path, port: int, bridge_port: int, server_name: str,
                      registration: Path, shared_secret: str) -> Path:
    """A minimal Synapse config for ``workdir`` plus ``homeserver.yaml.example``'s ``modules:``,
    with its placeholders filled in for this server."""
    example = yaml.safe_load((REPO / "homeserver.yaml.example").read_text(encoding="utf-8"))
    modules_text = yaml.safe_dump(example["modules"], sort_keys=False, allow_unicode=True)
    modules_text = modules_text.replace("example.org", server_name)
    modules_text = modules_text.replace("http://127.0.0.1:29330", f"http://127.0.0.1:{bridge_port}")
    modules = yaml.safe_load(modules_text)
    for module in modules:
        for key, value in module["config"].items():
            if isinstance(value, str) and value.startswith("CHANGE_ME"):
                module["config"][key] = "s3cret-" + key
    config: dict[str, Any] = {
        "server_name": server_name,
        "public_baseurl": f"http://127.0.0.1:{port}/",
        "report_stats": False,
        "pid_file": str(workdir / "homeserver.pid"),
        "signing_key_path": str(workdir / "signing.key"),
        "media_store_path": str(workdir / "media"),
        "listeners": [{"port": port, "bind_addresses": ["127.0.0.1"], "type": "http", "tls": False,
                       "resources": [{"names": ["client"], "compress": False}]}],
        "database": {"name": "sqlite3", "args": {"database": str(workdir / "homeserver.db")}},
        "registration_shared_secret": shared_secret,
        "macaroon_secret_key": secrets.token_hex(16),
        "form_secret": secrets.token_hex(16),
        "trusted_key_servers": [],
        "suppress_key_server_warning": True,
        "app_service_config_files": [str(registration)],
        "modules": modules,
    }
    path = workdir / "homeserver.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False, allow_unicode=True), encoding="utf-8")
    return path


def register(url: str, shared_secret: str, localpart: str, password: str) -> None:
    nonce = requests.get(f"{url}/_synapse/admin/v1/register", timeout=30).json()["nonce"]
    r = requests.post(f"{url}/_synapse/admin/v1/register", timeout=30, json={
        "nonce": nonce, "username": localpart, "password": password, "admin": False,
        "mac": registration_mac(shared_secret, nonce, localpart, password, False)})
    assert r.status_code == 200, r.text


def _answers(call: Any) -> bool:
    try:
        return bool(call().status_code == 200)
    except requests.RequestException:
        return False


@pytest.fixture
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    path = tmp_path_factory.mktemp("installed")
    assert REPO not in path.parents
    yield path


def test_the_wheel_runs_every_deployable_from_a_clean_venv(workdir: Path) -> None:
    wheel = build_wheel(workdir)
    venv = Venv(workdir / "venv", workdir)

    # Synapse's venv: Synapse, and Wangxin without extras.
    venv.pip_install(f"matrix-synapse=={version('matrix-synapse')}", str(wheel))
    for module in NOT_FOR_SYNAPSE:
        assert not venv.importable(module), f"{module} was installed into Synapse's venv"
    assert venv.module_file("synapse_modules").startswith(str(venv.path))

    port = services.free_port_block()
    bridge_port = port + 1
    server_name = f"wx{secrets.token_hex(3)}.test"
    url = f"http://127.0.0.1:{port}"
    shared_secret = secrets.token_hex(16)
    registration = workdir / "registration.yaml"
    bridge_config = workdir / "bridge.yaml"
    _run([venv.bin("wangxin-bridge"), "generate-registration", "--server-name", server_name,
          "--url", f"http://127.0.0.1:{bridge_port}", "--homeserver-url", url,
          "--output", str(registration), "--bridge-config", str(bridge_config)], workdir)
    config = homeserver_config(workdir, port, bridge_port, server_name, registration, shared_secret)
    _run([venv.bin("python"), "-m", "synapse.app.homeserver", "-c", str(config), "--generate-keys"], workdir)

    processes: list[subprocess.Popen[bytes]] = []
    logs = workdir / "logs.txt"
    try:
        processes.append(venv.start([venv.bin("python"), "-m", "synapse.app.homeserver", "-c", str(config)], logs))
        eventually(lambda: _answers(lambda: requests.get(f"{url}/health", timeout=2)), timeout=120, interval=0.5)
        info = requests.get(f"{url}/_synapse/client/wangxin/v1/info", timeout=10).json()
        assert info["features"] == MODULE_FEATURES, info
        assert info["merchant_bot"] == f"@merchantbot:{server_name}"

        # The bridge and the bots, from the same venv with their extras.
        venv.pip_install(f"{wheel}[bridge,bots]")
        processes.append(venv.start([venv.bin("wangxin-bridge"), "run", "-c", str(bridge_config)], logs))
        as_token = yaml.safe_load(registration.read_text(encoding="utf-8"))["as_token"]

        # Synapse's appservice ping: 200 once Synapse reached the running bridge.
        eventually(lambda: _answers(lambda: requests.post(
            f"{url}/_matrix/client/v1/appservice/wangxin/ping", json={},
            headers={"Authorization": f"Bearer {as_token}"}, timeout=10)), timeout=60, interval=0.5)

        password = secrets.token_hex(8)
        register(url, shared_secret, "merchantbot", password)
        store = workdir / "merchant-bot"
        bot_config = workdir / "merchant-bot.yaml"
        bot_config.write_text(yaml.safe_dump({"homeserver_url": url, "user_id": f"@merchantbot:{server_name}",
                                              "password": password, "store_dir": str(store)}), encoding="utf-8")
        processes.append(venv.start([venv.bin("wangxin-merchant-bot"), "-c", str(bot_config)], logs))
        # The parcels bot logs in as the parcels module's bot_user_id and reads with the modules'
        # service secret (both as homeserver.yaml.example names them, filled in above).
        register(url, shared_secret, "parcels", password)
        parcels_store = workdir / "parcels-bot"
        parcels_config = workdir / "parcels-bot.yaml"
        parcels_config.write_text(yaml.safe_dump({
            "homeserver_url": url, "user_id": f"@parcels:{server_name}", "password": password,
            "store_dir": str(parcels_store), "service_secret": "s3cret-service_secret"}), encoding="utf-8")
        processes.append(venv.start([venv.bin("wangxin-parcels-bot"), "-c", str(parcels_config)], logs))
        # The discovery bot acts with the discovery module's service secret (filled in above).
        register(url, shared_secret, "discoverybot", password)
        discovery_store = workdir / "discovery-bot"
        discovery_config = workdir / "discovery-bot.yaml"
        discovery_config.write_text(yaml.safe_dump({
            "homeserver_url": url, "user_id": f"@discoverybot:{server_name}", "password": password,
            "store_dir": str(discovery_store), "service_secret": "s3cret-service_secret"}), encoding="utf-8")
        processes.append(venv.start([venv.bin("wangxin-discovery-bot"), "-c", str(discovery_config)], logs))
        eventually(lambda: (store / "ready.json").exists(), timeout=60, interval=0.5)
        eventually(lambda: (parcels_store / "ready.json").exists(), timeout=60, interval=0.5)
        eventually(lambda: (discovery_store / "ready.json").exists(), timeout=60, interval=0.5)
        for p in processes:
            assert p.poll() is None, logs.read_text(errors="replace")[-5000:]
    except BaseException:
        print(logs.read_text(errors="replace")[-8000:] if logs.exists() else "(no logs)")
        raise
    finally:
        for p in reversed(processes):
            p.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 30
        for p in processes:
            try:
                p.wait(timeout=max(1.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                p.kill()
