"""``python -m wangxin_stack up``: run a Wangxin stack in a directory of its own.

    python -m wangxin_stack up [--dir .stack] [--port 8008] [--server-name localhost]
                               [--postgres DSN [--bridge-postgres DSN]] [--workers --redis HOST:PORT]
                               [--stock] [--relaxed-rate-limits] [--log-transactions]
"""

from __future__ import annotations

import argparse
import logging
import os
import sys

from wangxin_stack.options import (
    OptionError,
    PostgresDsn,
    RedisAddress,
    StackOptions,
    parse_discovery_options,
    parse_import_limits,
    parse_sms_from,
    parse_sms_limits,
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="wangxin-stack", description="Run a Wangxin dev stack")
    sub = parser.add_subparsers(dest="command", required=True)
    up = sub.add_parser("up", help="start Synapse with the modules, the bridge and the merchant bot")
    up.add_argument("--dir", default=".stack", help="stack directory: configs, data, logs (default .stack)")
    up.add_argument("--port", type=int, default=8008,
                    help="homeserver port; the stack also uses the next 19 ports (default 8008)")
    up.add_argument("--server-name", help="Matrix server name (default: the stack's saved one, else localhost)")
    up.add_argument("--postgres", metavar="DSN", help="use this PostgreSQL database instead of SQLite")
    up.add_argument("--bridge-postgres", metavar="DSN", help="PostgreSQL database for the bridge")
    up.add_argument("--workers", action="store_true",
                    help="run Synapse as main process + event persister + generic worker (needs --postgres, --redis)")
    up.add_argument("--redis", metavar="HOST:PORT", help="Redis for worker replication")
    up.add_argument("--stock", action="store_true",
                    help="stock Synapse only: no Wangxin modules, bridge or bot (for side-by-side benchmarks)")
    up.add_argument("--no-bot", action="store_true", help="do not start the bots (merchant, parcels and discovery)")
    up.add_argument("--no-turn", action="store_true",
                    help="do not start coturn, the TURN server of voice and video calls (started when installed)")
    up.add_argument("--relaxed-rate-limits", action="store_true",
                    help="lift Synapse's rate limits (tests and benchmarks drive many users from one address)")
    up.add_argument("--appservice-registration", metavar="PATH",
                    help="with --stock: register this application service (a benchmark's stock Synapse carrying the "
                         "same bridge registration as Wangxin, to tell the modules' cost from the bridge's)")
    up.add_argument("--log-transactions", action="store_true",
                    help="log the name of every database transaction Synapse runs (logger synapse.storage.txn)")
    up.add_argument("--circle-posts-per-day", type=int, metavar="N",
                    help="merchant circle post quota per merchant and day (default: the module's, 3)")
    up.add_argument("--circle-shard-size", type=int, metavar="N",
                    help="followers per merchant circle room before a further room is made (default: the "
                    "module's, 10000; 0: one room)")
    up.add_argument("--no-circle-space-filing", action="store_true",
                    help="do not file circles in followers' 商家圈 spaces (benchmarks of post delivery)")
    up.add_argument("--circle-chat-wait-s", type=int, metavar="S",
                    help="how long a follow started by a chat waits for its invitation (default: the module's, 30)")
    up.add_argument("--module-poll-ms", type=int, metavar="MS",
                    help="poll interval of the Wangxin modules' loops (circle membership watcher, mute repair, arrival "
                         "delivery); tests use a short one (default: each module's own, 500-1000)")
    up.add_argument("--bcrypt-rounds", type=int, metavar="N",
                    help="Synapse's password hashing rounds (default: Synapse's, 12); tests that register "
                         "hundreds of users use 4")
    up.add_argument("--lookups-per-day", type=int, metavar="N",
                    help="contact import: phone-number lookups per user and day (default: the module's, 50000)")
    up.add_argument("--import-limits", metavar="KEY=N,…", default="",
                    help="override the bridge's imports limits, e.g. max_bytes=2097152,max_rows=10000")
    up.add_argument("--sms-provider", choices=["outbox", "twilio"], default="outbox",
                    help="outbox: SMS go to sms-outbox.jsonl in the stack directory (default); twilio: the "
                         "Messages API at --twilio-base-url")
    up.add_argument("--twilio-base-url", metavar="URL", help="Twilio's API (default https://api.twilio.com)")
    up.add_argument("--twilio-account-sid", metavar="AC…")
    up.add_argument("--twilio-auth-token", metavar="TOKEN")
    up.add_argument("--sms-from", metavar="+NUMBER[,+NUMBER…]", default="",
                    help="our numbers, the SMS senders: each remote number sees each user from one of them "
                         "(docs/sms.md); with the outbox, what it records as the sender")
    up.add_argument("--sms-limits", metavar="KEY=N,…", default="",
                    help="override the bridge's sms.limits, e.g. per_destination_per_day=3,request_timeout_s=2")
    up.add_argument("--discovery-options", metavar="KEY=N,…", default="",
                    help="override the discovery module's options, e.g. shake_window_ms=1500,location_ttl_s=30 "
                         "(docs/discovery.md, \"Configuration\"); tests use short windows and small limits")
    up.add_argument("--coupon-url", metavar="URL",
                    help="the shop platform's coupon endpoint for 36.8° pairings (docs/discovery.md, \"Coupons\"); "
                         "default: a local issuer that writes coupon-outbox.jsonl in the stack directory")
    up.add_argument("--coupon-secret", metavar="SECRET", help="the secret shared with --coupon-url (HMAC-SHA256)")
    up.add_argument("--startup-timeout", type=float, default=240.0)
    return parser


def options_from_args(args: argparse.Namespace) -> StackOptions:
    directory = os.path.abspath(args.dir)
    os.makedirs(directory, exist_ok=True)
    saved_name = _saved_server_name(directory)
    server_name = args.server_name or saved_name or "localhost"
    if saved_name and server_name != saved_name:
        raise OptionError(
            f"--server-name: this stack directory belongs to server {saved_name!r}; a server name cannot change "
            f"once users exist. Use another --dir for {server_name!r}."
        )
    options = StackOptions(
        dir=directory,
        port=args.port,
        server_name=server_name,
        postgres=PostgresDsn.parse(args.postgres, "--postgres") if args.postgres else None,
        bridge_postgres=PostgresDsn.parse(args.bridge_postgres, "--bridge-postgres") if args.bridge_postgres else None,
        redis=RedisAddress.parse(args.redis) if args.redis else None,
        workers=args.workers,
        modules=not args.stock,
        bridge=not args.stock,
        bot=not args.stock and not args.no_bot,
        turn=not args.stock and not args.no_turn,
        relaxed_rate_limits=args.relaxed_rate_limits,
        log_transactions=args.log_transactions,
        appservice_registration=os.path.abspath(args.appservice_registration) if args.appservice_registration else None,
        circle_posts_per_day=args.circle_posts_per_day,
        circle_shard_size=args.circle_shard_size,
        circle_space_filing=not args.no_circle_space_filing,
        circle_chat_wait_s=args.circle_chat_wait_s,
        module_poll_ms=args.module_poll_ms,
        bcrypt_rounds=args.bcrypt_rounds,
        lookups_per_day=args.lookups_per_day,
        import_limits=parse_import_limits(args.import_limits),
        sms_provider=args.sms_provider,
        twilio_base_url=args.twilio_base_url,
        twilio_account_sid=args.twilio_account_sid,
        twilio_auth_token=args.twilio_auth_token,
        sms_from=parse_sms_from(args.sms_from),
        sms_limits=parse_sms_limits(args.sms_limits),
        discovery_options=parse_discovery_options(args.discovery_options),
        coupon_url=args.coupon_url,
        coupon_secret=args.coupon_secret,
        startup_timeout=args.startup_timeout,
    )
    options.validate()
    _save_server_name(directory, server_name)
    return options


def _saved_server_name(directory: str) -> str | None:
    try:
        with open(os.path.join(directory, "server_name"), encoding="utf-8") as f:
            return f.read().strip() or None
    except FileNotFoundError:
        return None


def _save_server_name(directory: str, name: str) -> None:
    with open(os.path.join(directory, "server_name"), "w", encoding="utf-8") as f:
        f.write(name + "\n")


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s", stream=sys.stderr)
    from wangxin_stack.launcher import check_ports_free, run

    try:
        options = options_from_args(args)
        check_ports_free(options)
    except OptionError as e:
        print(f"wangxin-stack: {e}", file=sys.stderr)
        return 2
    return run(options)


if __name__ == "__main__":
    sys.exit(main())
