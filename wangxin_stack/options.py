"""Command-line options of a stack, validated before anything starts."""

from __future__ import annotations

import os
from typing import Any

import attrs


class OptionError(Exception):
    """An option is wrong; the message names it."""


@attrs.frozen
class PostgresDsn:
    dbname: str
    user: str
    host: str
    port: int
    password: str | None
    raw: str

    @staticmethod
    def parse(dsn: str, option: str) -> PostgresDsn:
        from psycopg2.extensions import parse_dsn

        try:
            parts: dict[str, Any] = parse_dsn(dsn)
        except Exception as e:
            example = "postgresql://user@127.0.0.1:5432/db"
            raise OptionError(f"{option}: not a PostgreSQL DSN ({e}); e.g. '{example}'") from None
        if "dbname" not in parts:
            raise OptionError(f"{option}: the DSN names no database (dbname)")
        return PostgresDsn(
            dbname=parts["dbname"],
            user=parts.get("user", os.environ.get("USER", "postgres")),
            host=parts.get("host", "127.0.0.1"),
            port=int(parts.get("port", 5432)),
            password=parts.get("password"),
            raw=dsn,
        )


@attrs.frozen
class RedisAddress:
    host: str
    port: int

    @staticmethod
    def parse(value: str) -> RedisAddress:
        value = value.removeprefix("redis://").rstrip("/")
        host, _, port = value.rpartition(":")
        if not host or not port.isdigit():
            raise OptionError(f"--redis: expected HOST:PORT (e.g. 127.0.0.1:6379), found {value!r}")
        return RedisAddress(host, int(port))


# --port and the 19 after it: 8 for Synapse, its workers and the bridge (the worker topology uses
# them all), then coturn's listener and its relay range (wangxin_stack/turn.py).
PORTS_USED = 21
TURN_OFFSET = 8  # coturn's listener, UDP and TCP
TURN_RELAY_OFFSETS = (9, 19)  # coturn's relayed addresses (UDP), first and last
COUPON_OFFSET = 20  # the local coupon issuer (wangxin_stack/coupons.py), without --coupon-url


@attrs.frozen
class Ports:
    """Every port a stack listens on, all on 127.0.0.1; derived from the one ``--port``."""

    public: int  # what clients use: Synapse's client listener, or the router in front of workers
    bridge: int
    main_client: int
    main_replication: int
    persister_replication: int
    worker_client: int
    sync_client: int  # the sync worker: /v3/sync and sliding sync
    media_client: int  # the media worker
    turn: int  # coturn's listener (UDP and TCP), when coturn runs
    turn_relay: tuple[int, int]  # coturn's relay range (UDP), first and last
    coupons: int  # the local coupon issuer

    @staticmethod
    def from_base(base: int, workers: bool) -> Ports:
        return Ports(
            public=base,
            bridge=base + 1,
            main_client=base + 2 if workers else base,
            main_replication=base + 3,
            persister_replication=base + 4,
            worker_client=base + 5,
            sync_client=base + 6,
            media_client=base + 7,
            turn=base + TURN_OFFSET,
            turn_relay=(base + TURN_RELAY_OFFSETS[0], base + TURN_RELAY_OFFSETS[1]),
            coupons=base + COUPON_OFFSET,
        )

    def in_use(self, workers: bool, turn: bool = False, coupons: bool = False) -> dict[str, int]:
        named = {"the homeserver's client port": self.public, "the bridge": self.bridge}
        if coupons:
            named["the local coupon issuer"] = self.coupons
        if turn:
            named["the TURN server (coturn)"] = self.turn
        if workers:
            named.update(
                {
                    "Synapse main process (client)": self.main_client,
                    "Synapse main process (replication)": self.main_replication,
                    "the event persister worker": self.persister_replication,
                    "the generic worker": self.worker_client,
                    "the sync worker": self.sync_client,
                    "the media worker": self.media_client,
                }
            )
        return named


@attrs.frozen
class StackOptions:
    dir: str
    port: int
    server_name: str
    postgres: PostgresDsn | None = None
    bridge_postgres: PostgresDsn | None = None
    redis: RedisAddress | None = None
    workers: bool = False
    modules: bool = True
    bridge: bool = True
    bot: bool = True  # the bots: merchant, and parcels and discovery (with the modules)
    turn: bool = True  # run coturn when it is installed (wangxin_stack/turn.py); --no-turn: never
    relaxed_rate_limits: bool = False
    log_transactions: bool = False  # log every database transaction's name (benchmarks, debugging)
    appservice_registration: str | None = None  # with --stock: register this appservice file (benchmarks)
    circle_posts_per_day: int | None = None  # merchant circle quota override (benchmarks)
    circle_shard_size: int | None = None  # followers per circle room before the next (tests, benchmarks)
    circle_space_filing: bool = True  # off: circles are not filed in followers' spaces (benchmarks)
    circle_chat_wait_s: int | None = None  # how long a chat-started follow waits for its invite (tests)
    # Test knobs: production defaults stay in the modules and the bridge; tests render short polls
    # (a waiting test ends as soon as the feature can act) and small limits (a test of a limit
    # need not push megabytes or a day's quota through).
    module_poll_ms: int | None = None  # the modules' polls: membership watcher, mute repair, arrival delivery
    bcrypt_rounds: int | None = None  # Synapse's password hashing work factor (tests: the minimum, 4)
    lookups_per_day: int | None = None  # contact import: phone-number lookups per user and day
    import_limits: tuple[tuple[str, int], ...] = ()  # overrides of the bridge's imports limits
    sms_provider: str = "outbox"  # outbox | twilio
    twilio_base_url: str | None = None
    twilio_account_sid: str | None = None
    twilio_auth_token: str | None = None
    sms_from: tuple[str, ...] = ()  # the sender pool (--sms-from +1…,+1…)
    sms_limits: tuple[tuple[str, float], ...] = ()  # overrides of the bridge's sms.limits
    discovery_options: tuple[tuple[str, int], ...] = ()  # overrides of the discovery module's options (tests)
    coupon_url: str | None = None  # the platform's coupon endpoint; None: the local issuer (wangxin_stack/coupons.py)
    coupon_secret: str | None = None  # its shared secret (with --coupon-url)
    startup_timeout: float = 240.0

    @property
    def ports(self) -> Ports:
        return Ports.from_base(self.port, self.workers)

    def validate(self) -> None:
        if not 1024 <= self.port <= 65535 - PORTS_USED:
            raise OptionError(f"--port: expected a port between 1024 and {65535 - PORTS_USED}, found {self.port}")
        if self.workers and self.postgres is None:
            raise OptionError("--workers needs --postgres: Synapse workers share one PostgreSQL database")
        if self.workers and self.redis is None:
            raise OptionError("--workers needs --redis: workers replicate through Redis")
        if not self.modules and (self.bridge or self.bot):
            raise OptionError("--stock runs Synapse alone: it cannot be combined with the bridge or the bot")
        if self.appservice_registration and self.bridge:
            raise OptionError("--appservice-registration goes with --stock: a Wangxin stack registers its own bridge")
        if self.appservice_registration and not os.path.isfile(self.appservice_registration):
            raise OptionError(f"--appservice-registration: no such file: {self.appservice_registration}")
        if self.module_poll_ms is not None and not 50 <= self.module_poll_ms <= 60_000:
            raise OptionError(f"--module-poll-ms: expected 50..60000 milliseconds, found {self.module_poll_ms}")
        if self.bcrypt_rounds is not None and not 4 <= self.bcrypt_rounds <= 31:
            raise OptionError(f"--bcrypt-rounds: bcrypt takes 4..31 rounds, found {self.bcrypt_rounds}")
        if self.lookups_per_day is not None and self.lookups_per_day < 1:
            raise OptionError(f"--lookups-per-day: expected a positive number, found {self.lookups_per_day}")
        if self.coupon_url is not None and not self.coupon_url.startswith(("http://", "https://")):
            raise OptionError(f"--coupon-url: expected an http(s) URL, found {self.coupon_url!r}")
        if (self.coupon_url is None) != (self.coupon_secret is None):
            raise OptionError("--coupon-url and --coupon-secret go together")
        if self.coupon_secret is not None and len(self.coupon_secret) < 16:
            raise OptionError("--coupon-secret: expected at least 16 characters")
        if self.sms_provider == "twilio":
            for option, value in (("--twilio-account-sid", self.twilio_account_sid),
                                  ("--twilio-auth-token", self.twilio_auth_token), ("--sms-from", self.sms_from)):
                if not value:
                    raise OptionError(f"--sms-provider twilio needs {option}")


def parse_sms_from(text: str) -> tuple[str, ...]:
    """``+15005550006,+15005550007`` -> our numbers; one alphanumeric sender id is allowed alone."""
    import re

    numbers = tuple(filter(None, (part.strip() for part in text.split(","))))
    for number in numbers:
        if (len(numbers) > 1 or number.startswith("+")) and not re.fullmatch(r"\+[1-9][0-9]{6,14}", number):
            raise OptionError(f"--sms-from: expected E.164 numbers like +8613800138000, found {number!r}")
    if len(set(numbers)) != len(numbers):
        raise OptionError("--sms-from: a number is listed twice")
    return numbers


def parse_sms_limits(text: str) -> tuple[tuple[str, float], ...]:
    """``per_destination_per_day=3,request_timeout_s=1.5`` -> pairs, keys checked against the bridge's."""
    import attrs as _attrs

    from bridges.config import SmsLimits

    known = [f.name for f in _attrs.fields(SmsLimits)]
    pairs = []
    for item in filter(None, (part.strip() for part in text.split(","))):
        key, _, value = item.partition("=")
        if key not in known:
            raise OptionError(f"--sms-limits: unknown limit {key!r}; known: {', '.join(known)}")
        try:
            number = float(value)
        except ValueError:
            raise OptionError(f"--sms-limits: {key} needs a number, found {value!r}") from None
        if number <= 0:
            raise OptionError(f"--sms-limits: {key} must be positive, found {value}")
        pairs.append((key, number))
    return tuple(pairs)


def parse_discovery_options(text: str) -> tuple[tuple[str, int], ...]:
    """``shake_window_ms=1500,angle.window_ms=1500`` -> pairs, keys checked against the module's
    integer options (``section.key`` for those of its ``angle:`` and ``coupons:`` sections); the
    module's own validator checks the values when the config is rendered."""
    from synapse_modules.discovery.config import ANGLE_INT_OPTIONS, COUPON_INT_OPTIONS, INT_OPTIONS

    known = (*INT_OPTIONS, *(f"angle.{k}" for k in ANGLE_INT_OPTIONS), *(f"coupons.{k}" for k in COUPON_INT_OPTIONS))
    pairs = []
    for item in filter(None, (part.strip() for part in text.split(","))):
        key, _, value = item.partition("=")
        if key not in known:
            raise OptionError(f"--discovery-options: unknown option {key!r}; known: {', '.join(known)}")
        if not value.strip().isdigit():
            raise OptionError(f"--discovery-options: {key} needs a whole number, found {value!r}")
        pairs.append((key, int(value)))
    return tuple(pairs)


def parse_import_limits(text: str) -> tuple[tuple[str, int], ...]:
    """``max_rows=10000,max_bytes=2097152`` -> pairs, keys checked against the bridge's ``imports``."""
    import attrs as _attrs

    from bridges.config import ImportsConfig

    known = [f.name for f in _attrs.fields(ImportsConfig) if f.type in (int, "int")]
    pairs = []
    for item in filter(None, (part.strip() for part in text.split(","))):
        key, _, value = item.partition("=")
        if key not in known:
            raise OptionError(f"--import-limits: unknown limit {key!r}; known: {', '.join(known)}")
        if not value.strip().isdigit() or int(value) < 1:
            raise OptionError(f"--import-limits: {key} needs a positive whole number, found {value!r}")
        pairs.append((key, int(value)))
    return tuple(pairs)
