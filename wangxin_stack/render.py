"""Writes every config file of a stack from the templates, the options and the saved secrets."""

from __future__ import annotations

import os
from typing import Any

import attrs
import jinja2
import yaml

from bridges.registration import build_registration, render_registration
from wangxin_stack.coupons import issuer_url
from wangxin_stack.options import StackOptions
from wangxin_stack.state import StackState
from wangxin_stack.turn import TurnSetup, find_binary, render_turn, synapse_settings

APPSERVICE_ID = "wangxin"
BRIDGE_BOT_LOCALPART = "wangxin"
GHOST_PREFIX = "wx_"
MERCHANT_BOT_LOCALPART = "merchantbot"
PARCELS_BOT_LOCALPART = "parcels"
DISCOVERY_BOT_LOCALPART = "discoverybot"
CIRCLES_OWNER_LOCALPART = "wangxin-circles"  # the merchant circle's default owner_localpart

_env = jinja2.Environment(
    loader=jinja2.PackageLoader("wangxin_stack", "templates"),
    undefined=jinja2.StrictUndefined,
    keep_trailing_newline=True,
    trim_blocks=True,
    lstrip_blocks=True,
)


@attrs.frozen
class Worker:
    name: str
    role: str  # "event_persister", "generic", "sync" or "media"
    replication_port: int | None
    client_port: int | None


@attrs.frozen
class RenderedStack:
    homeserver_config: str
    worker_configs: dict[str, str]  # worker name -> path of its own YAML
    workers: tuple[Worker, ...]
    bridge_config: str | None
    bot_config: str | None
    registration: str | None
    parcels_bot_config: str | None = None  # the parcels bot (with the modules and the bots)
    discovery_bot_config: str | None = None  # the discovery bot (with the modules and the bots)
    turn: TurnSetup | None = None  # coturn, when it runs (installed, and no --no-turn)


def workers_for(options: StackOptions) -> tuple[Worker, ...]:
    if not options.workers:
        return ()
    p = options.ports
    # Sync and media on workers of their own (docs/operating.md, "Deploying for speed"): a long
    # initial sync or a burst of thumbnails does not hold up sends and room reads, and the
    # router sends each path where Synapse's worker documentation says it can be served.
    return (
        Worker("persister1", "event_persister", p.persister_replication, None),
        Worker("worker1", "generic", None, p.worker_client),
        Worker("sync1", "sync", None, p.sync_client),
        Worker("media1", "media", None, p.media_client),
    )


def module_configs(options: StackOptions, state: StackState) -> list[dict[str, Any]]:
    """The ``modules:`` list: every Wangxin module, configured for this stack."""
    if not options.modules:
        return []
    server = options.server_name
    poll = options.module_poll_ms  # None: every module keeps its own default
    return [
        {
            "module": "synapse_modules.server_info.ServerInfo",
            "config": {
                "bridge_bot": f"@{BRIDGE_BOT_LOCALPART}:{server}",
                "merchant_bot": f"@{MERCHANT_BOT_LOCALPART}:{server}",
            },
        },
        {
            "module": "synapse_modules.mute_exemptions.MuteExemptions",
            "config": {"service_secret": state.secrets["module_service_secret"],
                       **({"repair_interval_ms": poll} if poll else {})},
        },
        {
            "module": "synapse_modules.contact_import.ContactImport",
            "config": {
                "service_secret": state.secrets["module_service_secret"],
                **({"bridge_url": f"http://127.0.0.1:{options.ports.bridge}"} if options.bridge else {}),
                **({"delivery_interval_ms": poll} if poll else {}),
                **({"lookups_per_day": options.lookups_per_day} if options.lookups_per_day else {}),
            },
        },
        {
            "module": "synapse_modules.merchant_circle.MerchantCircle",
            "config": {
                "platform_secret": state.secrets["platform_secret"],
                "merchant_bot": f"@{MERCHANT_BOT_LOCALPART}:{server}",
                **({"posts_per_day": options.circle_posts_per_day} if options.circle_posts_per_day else {}),
                **({"shard_size": options.circle_shard_size} if options.circle_shard_size is not None else {}),
                **({} if options.circle_space_filing else {"space_filing": False}),
                **({"chat_follow_wait_s": options.circle_chat_wait_s} if options.circle_chat_wait_s else {}),
                **({"membership_poll_ms": poll} if poll else {}),
            },
        },
        {
            # Official accounts (docs/accounts.md): after the merchant circle, whose parts they use.
            # A dev stack may pin a storefront served on this machine over plain http.
            "module": "synapse_modules.accounts.Accounts",
            "config": {"storefront_allow_http_loopback": True,
                       # Scheduled and targeted posts are looked for this often (tests: 100 ms).
                       **({"posting": {"schedule_poll_ms": poll}} if poll else {})},
        },
        {
            "module": "synapse_modules.discovery.Discovery",
            "config": {
                # Its own secret: the discovery bot acts with it for the sender of a command.
                "service_secret": state.secrets["discovery_service_secret"],
                # Bots and the circles' owner never appear in discovery (nor do merchants).
                "service_accounts": [f"@{MERCHANT_BOT_LOCALPART}:{server}", f"@{CIRCLES_OWNER_LOCALPART}:{server}",
                                     f"@{DISCOVERY_BOT_LOCALPART}:{server}", f"@{PARCELS_BOT_LOCALPART}:{server}"],
                # Its cleanup deletes expired locations; a second is soon enough for a test of it.
                **({"cleanup_interval_ms": max(poll, 1000)} if poll else {}),
                **discovery_overrides(options, state),
            },
        },
        {
            "module": "synapse_modules.parcels.Parcels",
            "config": {
                "platform_secret": state.secrets["platform_secret"],
                "bot_user_id": f"@{PARCELS_BOT_LOCALPART}:{server}",
                "service_secret": state.secrets["module_service_secret"],
                "service_users": [f"@{MERCHANT_BOT_LOCALPART}:{server}", f"@{CIRCLES_OWNER_LOCALPART}:{server}"],
                **({"drain_interval_ms": poll} if poll else {}),
            },
        },
    ]


def discovery_overrides(options: StackOptions, state: StackState) -> dict[str, Any]:
    """The discovery options the stack sets: the coupon platform (the local issuer unless
    ``--coupon-url``), and ``--discovery-options`` (``section.key`` into its section)."""
    found: dict[str, Any] = {"coupons": {"url": options.coupon_url or issuer_url(options.ports.coupons),
                                         "secret": options.coupon_secret or state.secrets["coupon_secret"]}}
    for key, value in options.discovery_options:
        section, _, name = key.rpartition(".")
        (found.setdefault(section, {}) if section else found)[name] = value
    return found


def sms_config(options: StackOptions, d: str, delegate_secret: str | None = None) -> dict[str, Any]:
    """The bridge's ``sms:`` section: the outbox file in the stack directory, or Twilio at
    ``--twilio-base-url`` calling the bridge's own port back; ``--sms-from`` numbers are the
    sender pool of either."""
    ports = options.ports
    sms: dict[str, Any] = {
        "provider": options.sms_provider,
        "outbox_path": os.path.join(d, "sms-outbox.jsonl"),
        "default_region": "CN",
        "join_url": f"http://127.0.0.1:{ports.public}",
    }
    if options.sms_from and options.sms_provider == "outbox":
        sms["outbox_from"] = list(options.sms_from)
    if delegate_secret:
        sms["verification"] = {"delegate_secret": delegate_secret}
    if options.sms_provider == "twilio":
        sms["twilio"] = {
            "base_url": options.twilio_base_url or "https://api.twilio.com",
            "account_sid": options.twilio_account_sid,
            "auth_token": options.twilio_auth_token,
            "from": list(options.sms_from),
            "webhook_base_url": f"http://127.0.0.1:{ports.bridge}",
        }
    if options.sms_limits:
        from bridges.config import SmsLimits

        ints = {f.name for f in attrs.fields(SmsLimits) if f.type in (int, "int")}
        sms["limits"] = {k: int(v) if k in ints else v for k, v in options.sms_limits}
    return sms


def render_stack(options: StackOptions, state: StackState) -> RenderedStack:
    d = os.path.abspath(options.dir)
    os.makedirs(os.path.join(d, "logs"), exist_ok=True)
    os.makedirs(os.path.join(d, "media_store"), exist_ok=True)
    ports = options.ports
    workers = workers_for(options)
    s = state.secrets

    registration_path = None
    if options.bridge:
        registration_path = os.path.join(d, "appservice-registration.yaml")
        registration = build_registration(
            appservice_id=APPSERVICE_ID,
            url=f"http://127.0.0.1:{ports.bridge}",
            as_token=s["as_token"],
            hs_token=s["hs_token"],
            server_name=options.server_name,
            bot_localpart=BRIDGE_BOT_LOCALPART,
            ghost_prefix=GHOST_PREFIX,
        )
        _write(registration_path, render_registration(registration, "# Generated by wangxin-stack.\n"))

    database: dict[str, Any] = {"kind": "sqlite"}
    if options.postgres:
        pg = options.postgres
        database = {
            "kind": "postgres",
            "dbname": pg.dbname,
            "user": pg.user,
            "host": pg.host,
            "port": pg.port,
            "password": pg.password,
        }
    # coturn when installed (wangxin_stack/turn.py); Synapse hands out credentials for it.
    turn = render_turn(binary=find_binary() if options.turn else None, directory=d, port=ports.turn,
                       relay_ports=ports.turn_relay, secret=s["turn_shared_secret"], realm=options.server_name)
    context = {
        "dir": d,
        "server_name": options.server_name,
        "public_baseurl": f"http://127.0.0.1:{ports.public}/",
        "ports": {"client": ports.main_client, "replication": ports.main_replication},
        "database": database,
        "secrets": s,
        "appservice_registration": registration_path or options.appservice_registration,
        # The bridge serves the msisdn delegate endpoints (bridges/sms/identity.py); Synapse sends
        # it no credentials, so the secret is in the URL.
        "msisdn_delegate": (f"http://127.0.0.1:{ports.bridge}/_wangxin/v1/msisdn-delegate/"
                            f"{s['msisdn_delegate_secret']}") if options.bridge else None,
        "relaxed_rate_limits": options.relaxed_rate_limits,
        "bcrypt_rounds": options.bcrypt_rounds,
        "log_transactions": options.log_transactions,
        "workers": [attrs.asdict(w) for w in workers],
        "redis": attrs.asdict(options.redis) if options.redis else None,
        "modules": module_configs(options, state),
        "turn": synapse_settings(turn, s["turn_shared_secret"]) if turn else None,
    }
    homeserver_path = os.path.join(d, "homeserver.yaml")
    _write(homeserver_path, _env.get_template("homeserver.yaml.j2").render(**context))
    _write(os.path.join(d, "log.config"), _env.get_template("log.config.j2").render(**context))

    worker_configs = {}
    for w in workers:
        listeners = []
        if w.replication_port:
            listeners.append(
                {"port": w.replication_port, "bind_addresses": ["127.0.0.1"], "type": "http",
                 "resources": [{"names": ["replication"]}]}
            )
        if w.client_port:
            listeners.append(
                {"port": w.client_port, "bind_addresses": ["127.0.0.1"], "type": "http", "x_forwarded": True,
                 "resources": [{"names": ["media" if w.role == "media" else "client"]}]}
            )
        path = os.path.join(d, "workers", f"{w.name}.yaml")
        os.makedirs(os.path.dirname(path), exist_ok=True)
        _write(
            path,
            yaml.safe_dump(
                {
                    "worker_app": "synapse.app.generic_worker",
                    "worker_name": w.name,
                    "worker_listeners": listeners,
                    "worker_log_config": os.path.join(d, "log.config"),
                    # The shared config turns the media repository off everywhere else.
                    **({"enable_media_repo": True} if w.role == "media" else {}),
                },
                sort_keys=False,
            ),
        )
        worker_configs[w.name] = path

    bridge_path = None
    if options.bridge:
        bridge_db: dict[str, Any] = {"kind": "sqlite", "path": os.path.join(d, "bridge.db")}
        if options.bridge_postgres:
            bridge_db = {"kind": "postgres", "dsn": options.bridge_postgres.raw}
        bridge_path = os.path.join(d, "bridge.yaml")
        _write_yaml(
            bridge_path,
            {
                "homeserver": {
                    "url": f"http://127.0.0.1:{ports.public}",
                    "server_name": options.server_name,
                    "service_secret": s["module_service_secret"],
                },
                "appservice": {
                    "id": APPSERVICE_ID,
                    "as_token": s["as_token"],
                    "hs_token": s["hs_token"],
                    "bind_address": "127.0.0.1",
                    "port": ports.bridge,
                    "bot_localpart": BRIDGE_BOT_LOCALPART,
                    "ghost_prefix": GHOST_PREFIX,
                },
                "database": bridge_db,
                **({"imports": dict(options.import_limits)} if options.import_limits else {}),
                "sms": sms_config(options, d, s["msisdn_delegate_secret"]),
            },
        )

    def bot_config(name: str, localpart: str, password: str, service_secret: str, **extra: Any) -> str:
        path = os.path.join(d, f"{name}-bot.yaml")
        _write_yaml(path, {
            "homeserver_url": f"http://127.0.0.1:{ports.public}",
            "user_id": f"@{localpart}:{options.server_name}",
            "password": s[password],
            "store_dir": os.path.join(d, f"{name}-bot"),
            "service_secret": s[service_secret],
            **extra,
        })
        return path

    bot_path = parcels_bot_path = discovery_bot_path = None
    if options.bot:
        # `orders` reads the merchant's shipments from the parcels module with the service secret.
        bot_path = bot_config("merchant", MERCHANT_BOT_LOCALPART, "merchant_bot_password", "module_service_secret")
    if options.bot and options.modules:
        parcels_bot_path = bot_config("parcels", PARCELS_BOT_LOCALPART, "parcels_bot_password",
                                      "module_service_secret")
        # The feed shows changes 2 s old at the newest: a faster poll than this gains little.
        discovery_bot_path = bot_config(
            "discovery", DISCOVERY_BOT_LOCALPART, "discovery_bot_password", "discovery_service_secret",
            **({"poll_interval_ms": max(options.module_poll_ms, 500)} if options.module_poll_ms else {}))
    return RenderedStack(homeserver_path, worker_configs, workers, bridge_path, bot_path, registration_path,
                         parcels_bot_path, discovery_bot_config=discovery_bot_path, turn=turn)


def _write(path: str, text: str) -> None:
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(text)
    os.chmod(tmp, 0o600)
    os.replace(tmp, path)


def _write_yaml(path: str, data: Any) -> None:
    _write(path, "# Generated by wangxin-stack; regenerated at every start.\n" + yaml.safe_dump(data, sort_keys=False))
