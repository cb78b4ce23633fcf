"""Brings a stack up in order, reports it in ``stack.json``, supervises it, and takes it down."""

from __future__ import annotations

import json
import logging
import os
import signal
import socket
import sys
import time
import traceback
from typing import Any

from twisted.internet import defer, reactor

from wangxin_stack import homeserver_admin as hs
from wangxin_stack import turn as turn_server
from wangxin_stack.coupons import issuer_url, listen_coupon_issuer
from wangxin_stack.options import PORTS_USED, OptionError, StackOptions
from wangxin_stack.render import (
    APPSERVICE_ID,
    BRIDGE_BOT_LOCALPART,
    DISCOVERY_BOT_LOCALPART,
    MERCHANT_BOT_LOCALPART,
    PARCELS_BOT_LOCALPART,
    RenderedStack,
    render_stack,
)
from wangxin_stack.router import listen_router
from wangxin_stack.state import StackState
from wangxin_stack.supervisor import Child, python_argv, tail

logger = logging.getLogger(__name__)

STACK_FILE = "stack.json"


class StartupFailed(Exception):
    """The stack could not start; the message says which part and why."""


def check_ports_free(options: StackOptions) -> None:
    coturn = options.turn and turn_server.find_binary() is not None
    local_issuer = options.modules and options.coupon_url is None
    for what, port in options.ports.in_use(options.workers, turn=coturn, coupons=local_issuer).items():
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            # As servers do: a closed listener's lingering TIME_WAIT connections must not count.
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                raise OptionError(
                    f"port {port} ({what}) is already in use on 127.0.0.1; stop what uses it or pick another "
                    f"base port with --port (the stack uses {options.port}..{options.port + PORTS_USED - 1})"
                ) from None


class Launcher:
    def __init__(self, options: StackOptions):
        self.options = options
        self.dir = os.path.abspath(options.dir)
        self.state = StackState.load_or_create(self.dir)
        self.rendered: RenderedStack | None = None
        self.children: list[Child] = []
        self.router_port: Any = None
        self.coupon_port: Any = None
        self.ready = False
        # The children import Wangxin from the installed package, as an operator's would: nothing
        # puts the source tree on their path.
        self.env = dict(os.environ, PYTHONUNBUFFERED="1")

    # -- start ----------------------------------------------------------------------------

    async def start(self) -> dict[str, Any]:
        o = self.options
        started = time.monotonic()
        self.rendered = render_stack(o, self.state)
        coturn = self._start_turn()  # first, not waited for: it is ready long before Synapse is
        if o.modules and o.coupon_url is None:  # before Synapse, which may ask it as soon as it runs
            self.coupon_port = listen_coupon_issuer(o.ports.coupons, self.state.secrets["coupon_secret"],
                                                    self.coupon_outbox)
        await self._generate_signing_key()
        main = self._child(
            "synapse", python_argv("-m", "synapse.app.homeserver", "-c", self.rendered.homeserver_config)
        )
        main.start()
        await self._wait_healthy(main, f"http://127.0.0.1:{o.ports.main_client}/health")
        for w in self.rendered.workers:
            worker = self._child(
                f"synapse-{w.name}",
                python_argv("-m", "synapse.app.generic_worker", "-c", self.rendered.homeserver_config,
                            "-c", self.rendered.worker_configs[w.name]),
            )
            worker.start()
            port = w.client_port or w.replication_port
            await self._wait_healthy(worker, f"http://127.0.0.1:{port}/health")
        if o.workers:
            self.router_port = listen_router(o.ports.public, o.ports.main_client, o.ports.worker_client,
                                             o.ports.sync_client, o.ports.media_client)
        await self._wait_client_api()
        await self._ensure_users()
        if self.rendered.bridge_config:
            bridge = self._child("bridge", python_argv("-m", "bridges", "run", "-c", self.rendered.bridge_config))
            bridge.start()
            await self._wait_bridge(bridge)
        # The bots log in and sync at the same time; the stack is ready once each has said so.
        bots = (("merchant", self.rendered.bot_config), ("parcels", self.rendered.parcels_bot_config),
                ("discovery", self.rendered.discovery_bot_config))
        starting = []
        for name, config in bots:
            if config:
                bot = self._child(f"{name}-bot", python_argv("-m", f"bots.{name}", "-c", config))
                ready_file = os.path.join(self.dir, f"{name}-bot", "ready.json")
                _remove(ready_file)
                bot.start()
                starting.append((bot, ready_file))
        for bot, ready_file in starting:
            await self._wait_file(bot, ready_file)
        if coturn:
            await self._wait_turn(coturn)
        info = self._stack_info(time.monotonic() - started)
        self._write_stack_file(info)
        self.ready = True
        for child in self.children:
            child.supervise = True
            child.on_restart = lambda _c: self._write_stack_file(self._stack_info(info["startup_seconds"]))
        return info

    def _child(self, name: str, argv: list[str]) -> Child:
        child = Child(name, argv, os.path.join(self.dir, "logs", f"{name}.log"), self.env, self.dir)
        self.children.append(child)
        return child

    def _start_turn(self) -> Child | None:
        """coturn, when installed and wanted; otherwise say once that calls will not relay."""
        assert self.rendered is not None
        setup = self.rendered.turn
        if setup is None:
            if self.options.turn:
                print(f"wangxin-stack: {turn_server.NOT_INSTALLED}", file=sys.stderr, flush=True)
            return None
        coturn = self._child("coturn", setup.argv())
        coturn.start()
        return coturn

    async def _wait_turn(self, coturn: Child) -> None:
        assert self.rendered is not None and self.rendered.turn is not None
        deadline = time.monotonic() + self.options.startup_timeout
        while not turn_server.listening(self.rendered.turn.port):
            if coturn.pid is None:
                raise StartupFailed(f"coturn exited during startup. Last lines of {coturn.log_path}:\n"
                                    f"{tail(coturn.log_path)}")
            if time.monotonic() > deadline:
                raise StartupFailed(f"coturn was not listening within {self.options.startup_timeout:.0f}s; "
                                    f"see {coturn.log_path}")
            await hs.sleep(0.1)

    async def _generate_signing_key(self) -> None:
        assert self.rendered is not None
        # Writes the signing key if missing, then exits (docs/synapse.md, "Test homeservers").
        argv = python_argv("-m", "synapse.app.homeserver", "-c", self.rendered.homeserver_config, "--generate-keys")
        child = Child("synapse-keygen", argv, os.path.join(self.dir, "logs", "synapse.log"), self.env, self.dir)
        child.start()
        code = await child.wait_exit()
        if code != 0:
            raise StartupFailed(
                f"Synapse rejected its configuration ({self.rendered.homeserver_config}):\n{tail(child.log_path)}"
            )

    async def _wait_healthy(self, child: Child, url: str) -> None:
        try:
            await hs.wait_until_healthy(url, self.options.startup_timeout, lambda: child.pid is not None)
        except hs.HomeserverError as e:
            raise StartupFailed(f"{child.name} did not start: {e}. Last lines of {child.log_path}:\n"
                                f"{tail(child.log_path)}") from e

    async def _wait_client_api(self) -> None:
        await hs.wait_until_healthy(f"{self.public_url}/_matrix/client/versions", self.options.startup_timeout)

    async def _wait_bridge(self, bridge: Child) -> None:
        deadline = time.monotonic() + self.options.startup_timeout
        last: Any = None
        while time.monotonic() < deadline:
            if bridge.pid is None:
                raise StartupFailed(f"the bridge exited during startup. Last lines of {bridge.log_path}:\n"
                                    f"{tail(bridge.log_path)}")
            code, body = await hs.ping_appservice(self.public_url, APPSERVICE_ID, self.state.secrets["as_token"])
            if code == 200:
                return
            last = (code, body)
            await hs.sleep(0.3)
        raise StartupFailed(f"Synapse could not ping the bridge: {last}. See {bridge.log_path}")

    async def _wait_file(self, child: Child, path: str) -> None:
        deadline = time.monotonic() + self.options.startup_timeout
        while time.monotonic() < deadline:
            if child.pid is None:
                raise StartupFailed(f"{child.name} exited during startup. Last lines of {child.log_path}:\n"
                                    f"{tail(child.log_path)}")
            if os.path.exists(path):
                return
            await hs.sleep(0.2)
        raise StartupFailed(f"{child.name} was not ready within {self.options.startup_timeout:.0f}s; "
                            f"see {child.log_path}")

    async def _ensure_users(self) -> None:
        """Create the admin, the demo user and the merchant bot's account once; reuse them later."""
        s = self.state.secrets
        main_url = f"http://127.0.0.1:{self.options.ports.main_client}"  # nonces live in the main process
        wanted = [("admin", "admin", s["admin_password"], True), ("demo", "demo", s["demo_password"], False)]
        if self.options.bot:
            wanted.append(("merchant_bot", MERCHANT_BOT_LOCALPART, s["merchant_bot_password"], False))
        if self.options.modules:
            # Created here with a password, before any shipment, so that a bot process can log
            # in as it; the parcels module would otherwise register it (without one) on first use.
            wanted.append(("parcels_bot", PARCELS_BOT_LOCALPART, s["parcels_bot_password"], False))
        if self.options.bot and self.options.modules:
            wanted.append(("discovery_bot", DISCOVERY_BOT_LOCALPART, s["discovery_bot_password"], False))
        for role, localpart, password, admin in wanted:
            known = self.state.user(role)
            if known and await hs.whoami(self.public_url, known["access_token"]):
                continue
            created = await hs.register_with_shared_secret(
                main_url, s["registration_shared_secret"], localpart, password, admin
            )
            if created is None:  # exists, but our saved token is gone: log in again
                created = await hs.login(self.public_url, f"@{localpart}:{self.options.server_name}", password)
            self.state.set_user(
                role, {"user_id": created["user_id"], "access_token": created["access_token"], "password": password}
            )
        merchant_bot = self.state.user("merchant_bot") if self.options.bot else None
        admin_user = self.state.user("admin")
        if merchant_bot and admin_user:
            # One bot answers every merchant: Synapse's rc_message (0.2/s, burst 10, per sender)
            # would silence it after a few commands a minute. docs/operating.md: production does the same.
            await hs.exempt_from_rate_limits(main_url, admin_user["access_token"], merchant_bot["user_id"])
        parcels_bot = self.state.user("parcels_bot") if self.options.modules else None
        if parcels_bot and admin_user:
            # The module's own cards skip rate limits; a bot answering everyone's `track` would not.
            await hs.exempt_from_rate_limits(main_url, admin_user["access_token"], parcels_bot["user_id"])
        discovery_bot = self.state.user("discovery_bot") if self.options.bot and self.options.modules else None
        if discovery_bot and admin_user:
            # One bot answers everyone's discovery commands and tells them of their requests.
            await hs.exempt_from_rate_limits(main_url, admin_user["access_token"], discovery_bot["user_id"])

    @property
    def coupon_outbox(self) -> str:
        return os.path.join(self.dir, "coupon-outbox.jsonl")

    @property
    def public_url(self) -> str:
        return f"http://127.0.0.1:{self.options.ports.public}"

    def _stack_info(self, startup_seconds: float) -> dict[str, Any]:
        o = self.options
        s = self.state.secrets
        admin = self.state.user("admin") or {}
        demo = self.state.user("demo") or {}
        info: dict[str, Any] = {
            "homeserver_url": self.public_url,
            "server_name": o.server_name,
            "registration_shared_secret": s["registration_shared_secret"],
            "admin": {"user_id": admin.get("user_id"), "access_token": admin.get("access_token"),
                      "password": admin.get("password")},
            "demo": {"user_id": demo.get("user_id"), "password": demo.get("password")},
            "database": "postgres" if o.postgres else "sqlite",
            "workers": [w.name for w in self.rendered.workers] if self.rendered else [],
            "modules": o.modules,
            "dir": self.dir,
            "logs_dir": os.path.join(self.dir, "logs"),
            "homeserver_config": self.rendered.homeserver_config if self.rendered else None,
            "main_process_url": f"http://127.0.0.1:{o.ports.main_client}",
            "launcher_pid": os.getpid(),
            "processes": {c.name: c.pid for c in self.children if c.pid},
            "startup_seconds": round(startup_seconds, 2),
            "bot_user_ids": [],
            # The TURN server Synapse hands out credentials for (wangxin_stack/turn.py); None: no coturn.
            "turn": self.rendered.turn.stack_info() if self.rendered and self.rendered.turn else None,
        }
        if o.modules:
            # For the shopping platform (and tests): POST /_synapse/client/wangxin/v1/purchases.
            info["merchant_circle"] = {"platform_secret": s["platform_secret"]}
            # POST /_synapse/client/wangxin/v1/shipments takes the same secret (docs/parcels.md).
            pb = self.state.user("parcels_bot") or {}
            info["parcels"] = {"platform_secret": s["platform_secret"], "bot_user_id": pb.get("user_id"),
                               # whether the parcels bot process (bots/parcels) answers `track`
                               "bot_running": o.bot}
            info["bot_user_ids"].append(pb.get("user_id"))
        if o.bridge:
            info["appservice_id"] = APPSERVICE_ID
            info["bridge"] = {
                "url": f"http://127.0.0.1:{o.ports.bridge}",
                "appservice_id": APPSERVICE_ID,
                "bot_user_id": f"@{BRIDGE_BOT_LOCALPART}:{o.server_name}",
                "as_token": s["as_token"],
                "hs_token": s["hs_token"],
                "config": self.rendered.bridge_config if self.rendered else None,
                "sms": {"provider": o.sms_provider, "outbox": os.path.join(self.dir, "sms-outbox.jsonl"),
                        "webhook_base_url": f"http://127.0.0.1:{o.ports.bridge}"},
            }
            info["bot_user_ids"].append(info["bridge"]["bot_user_id"])
        if o.bot and o.modules:
            db = self.state.user("discovery_bot") or {}
            info["discovery"] = {
                "bot_user_id": db.get("user_id"),
                # Where the module asks for 36.8° coupons; the local issuer's record (None with --coupon-url).
                "coupon_url": o.coupon_url or issuer_url(o.ports.coupons),
                "coupon_outbox": None if o.coupon_url else self.coupon_outbox,
            }
            info["bot_user_ids"].append(db.get("user_id"))
        if o.bot:
            mb = self.state.user("merchant_bot") or {}
            info["merchant_bot"] = {"user_id": mb.get("user_id")}
            info["bot_user_ids"].append(mb.get("user_id"))
        return info

    def _write_stack_file(self, info: dict[str, Any]) -> None:
        info["processes"] = {c.name: c.pid for c in self.children if c.pid}
        path = os.path.join(self.dir, STACK_FILE)
        tmp = path + ".tmp"
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump(info, f, indent=2)
        os.chmod(tmp, 0o600)
        os.replace(tmp, path)

    # -- stop ------------------------------------------------------------------------------

    async def stop(self) -> None:
        for child in self.children:
            child.stopping = True
        if self.router_port is not None:
            await self.router_port.stopListening()
        if self.coupon_port is not None:
            await self.coupon_port.stopListening()
        # Clients first, the homeserver last, so nothing talks to a homeserver that is gone.
        for child in reversed(self.children):
            await child.stop()
        _remove(os.path.join(self.dir, STACK_FILE))


def banner(info: dict[str, Any]) -> str:
    lines = [
        "",
        "Wangxin is running.",
        "",
        f"  Homeserver:   {info['homeserver_url']}   (server name: {info['server_name']})",
        f"  Demo user:    {info['demo']['user_id']}   password: {info['demo']['password']}",
        f"  Admin user:   {info['admin']['user_id']}   password: {info['admin']['password']}",
        f"  Admin token:  {info['admin']['access_token']}",
    ]
    if "bridge" in info:
        lines.append(f"  Bridge bot:   {info['bridge']['bot_user_id']}   (DM it and send “help”)")
    if "merchant_bot" in info:
        lines.append(f"  Merchant bot: {info['merchant_bot']['user_id']}")
    if "discovery" in info:
        lines.append(f"  Discovery bot: {info['discovery']['bot_user_id']}   (people nearby, shake, bottles)")
    if info.get("parcels", {}).get("bot_running"):
        lines.append(f"  Parcels bot:  {info['parcels']['bot_user_id']}   (send it “track”)")
    if info.get("turn"):
        lines.append(f"  TURN (calls): {', '.join(info['turn']['uris'])}   (coturn)")
    lines += [
        "",
        "  Sign in from Element: open Element (desktop, or app.element.io in a browser on this machine),",
        f"  choose “Sign in”, edit the homeserver to {info['homeserver_url']}, then use the demo user above.",
        "",
        f"  Everything is in {info['dir']} (stack.json, logs/). Ctrl-C stops the whole stack.",
        "",
    ]
    return "\n".join(lines)


def run(options: StackOptions) -> int:
    """Start the stack and serve until SIGINT/SIGTERM; returns the process exit code."""
    launcher = Launcher(options)
    exit_code = [0]

    async def start() -> None:
        try:
            info = await launcher.start()
        except (StartupFailed, hs.HomeserverError, OptionError) as e:
            print(f"\nwangxin-stack: {e}", file=sys.stderr)
            exit_code[0] = 1
        except Exception:
            # A bug, not a config problem: say so and stop, rather than wait forever.
            traceback.print_exc()
            print("\nwangxin-stack: internal error while starting (see above); stopping", file=sys.stderr)
            exit_code[0] = 1
        if exit_code[0]:
            if not stopping[0]:
                stopping[0] = True
                reactor.stop()
            return
        print(banner(info), flush=True)

    stopping = [False]

    def on_signal(signum: int, frame: Any) -> None:
        # Ctrl-C in a terminal signals the whole process group, so the children are stopping
        # too: stop supervising at once, before their exits are noticed as crashes.
        for child in launcher.children:
            child.stopping = True
        if stopping[0]:
            return
        stopping[0] = True
        print("\nwangxin-stack: stopping…", file=sys.stderr, flush=True)
        reactor.callFromThread(reactor.stop)  # type: ignore[attr-defined]

    def install_signal_handlers() -> None:
        # Replace Twisted's SIGINT/SIGTERM handlers (its SIGCHLD handling, which reaps the
        # children, stays in place).
        signal.signal(signal.SIGINT, on_signal)
        signal.signal(signal.SIGTERM, on_signal)

    reactor.addSystemEventTrigger("before", "shutdown", lambda: defer.ensureDeferred(launcher.stop()))
    reactor.callWhenRunning(install_signal_handlers)
    reactor.callWhenRunning(lambda: defer.ensureDeferred(start()))
    reactor.run()
    return exit_code[0]


def _remove(path: str) -> None:
    try:
        os.remove(path)
    except FileNotFoundError:
        pass
