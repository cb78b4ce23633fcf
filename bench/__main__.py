"""``python3 run.py bench [core|transactions|mute|merchant_circle|follow_cost|contact_import|sms|first_screen|
send_cost|parcels|discovery|angle|audience] [options]``: print benchmark figures as JSON.

Each benchmark starts its stacks itself (Wangxin and stock Synapse side by side) and prints
absolute figures plus the ratio against stock. Results are also written to bench/results/.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import time


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench")
    parser.add_argument("which", nargs="?", default="core",
                        choices=["core", "transactions", "mute", "merchant_circle", "follow_cost", "contact_import",
                                 "sms", "first_screen", "send_cost", "parcels", "discovery", "angle", "audience"])
    parser.add_argument("--messages", type=int, default=300, help="messages per side")
    parser.add_argument("--members", type=int, default=1000, help="room members (mute)")
    parser.add_argument("--followers", type=int,
                        help="circle size (merchant_circle, follow_cost: default 10000; audience: 20000)")
    parser.add_argument("--shard-size", type=int, default=10000,
                        help="audience: followers per room of the account's channel before the next room")
    parser.add_argument("--targeted", type=int, default=2000,
                        help="audience: people a platform's targeted post reaches (of --followers)")
    parser.add_argument("--concurrency", type=int, default=8, help="parallel webhooks / joins (merchant_circle)")
    parser.add_argument("--follows-only", action="store_true",
                        help="merchant_circle: measure the follow wave only (no filing wait, no sends)")
    parser.add_argument("--control-room", action="store_true",
                        help="merchant_circle: also post into a plain room with the same members on the Wangxin "
                             "server, to split the modules' cost per post from the rest of the server's")
    parser.add_argument("--follow-control", action="store_true",
                        help="merchant_circle: during the follow wave, also admin-join as many other users into "
                             "a plain room on the Wangxin server: follows vs raw admin joins on the same server")
    parser.add_argument("--registered-stock", action="store_true",
                        help="merchant_circle, with --follows-only: during the follow wave, also admin-join as "
                             "many users on a third server, stock Synapse carrying the bridge's registration")
    parser.add_argument("--same-data", action="store_true",
                        help="merchant_circle: at the end, post into the same circle on Wangxin and on two stock "
                             "Synapses serving copies of its database, one with the bridge's registration (all "
                             "restarted): the modules' cost per post apart from the registered bridge's")
    parser.add_argument("--contacts", type=int, default=5000, help="synthetic export size (contact_import)")
    parser.add_argument("--groups", type=int, default=300, help="synthetic export groups (contact_import)")
    parser.add_argument("--seconds", type=int, default=60,
                        help="how long to push SMS (sms); how long both servers stay idle (transactions)")
    parser.add_argument("--rate", type=int, default=300, help="SMS offered per second (sms)")
    parser.add_argument("--rooms", type=int, default=500, help="first_screen: the heavy account's DMs and groups")
    parser.add_argument("--circles", type=int, default=30, help="first_screen: merchant circles followed")
    parser.add_argument("--posts", type=int, default=50, help="first_screen: product posts per circle")
    parser.add_argument("--big-group", type=int, default=2000, help="first_screen: members of the big group")
    parser.add_argument("--largest-group", type=int,
                        help="first_screen: members of the largest group (default: --rooms, at most 500)")
    parser.add_argument("--history", type=int, default=24, help="first_screen: messages per DM and group")
    parser.add_argument("--keep-build", metavar="DIR",
                        help="first_screen: also keep the built account in this new directory (see --reuse-build)")
    parser.add_argument("--py-spy", action="store_true",
                        help="send_cost: also profile each side's Synapse during its sends (needs py-spy)")
    parser.add_argument("--idle-seconds", type=int, default=30,
                        help="send_cost: how long all three servers stay idle while their idle cost is measured")
    parser.add_argument("--reuse-build", metavar="DIR",
                        help="first_screen, send_cost (required there): measure the account kept in DIR by "
                             "--keep-build (on a copy of it; same database kind, either topology) instead of "
                             "building one; its sizes apply")
    parser.add_argument("--samples", type=int,
                        help="first_screen: measured requests per side for each sync and circle measurement")
    parser.add_argument("--people", type=int,
                        help="parcels: people with shipments (default 1000); discovery: synthetic opted-in people "
                             "(default 100000)")
    parser.add_argument("--shipments", type=int, default=10,
                        help="parcels: shipment updates per person, on parcels that walk the statuses in order "
                             "(default 10)")
    parser.add_argument("--postgres", metavar="DSN",
                        help="run the stacks on fresh PostgreSQL databases created on this DSN's server")
    parser.add_argument("--workers", action="store_true",
                        help="first_screen: run both sides on the worker topology (needs --postgres and Redis)")
    parser.add_argument("--redis", metavar="HOST:PORT", default="127.0.0.1:6379",
                        help="first_screen --workers: the Wangxin side's Redis (the stock copy starts its own)")
    args = parser.parse_args(argv)
    if args.workers and not args.postgres:
        parser.error("--workers needs --postgres DSN: Synapse workers share one PostgreSQL database")
    # A SIGTERM (e.g. from `timeout`) unwinds like Ctrl-C, so the stacks a benchmark started are
    # stopped by its `finally` blocks instead of running on, orphaned, under the next benchmark.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    if args.postgres:
        os.environ["WANGXIN_TEST_PG"] = args.postgres
    samples = args.samples if args.samples is not None else 30  # first_screen's default
    followers = args.followers if args.followers is not None else (20000 if args.which == "audience" else 10000)
    if args.which == "core":
        from bench import core

        result = core.run(messages=args.messages, postgres=bool(args.postgres))
    elif args.which == "transactions":
        from bench import transactions

        result = transactions.run(seconds=args.seconds, messages=args.messages, postgres=bool(args.postgres))
    elif args.which == "merchant_circle":
        from bench import merchant_circle

        result = merchant_circle.run(followers=followers, messages=args.messages,
                                     concurrency=args.concurrency, postgres=bool(args.postgres),
                                     follows_only=args.follows_only, control_room=args.control_room,
                                     same_data=args.same_data, follow_control=args.follow_control,
                                     registered_stock=args.registered_stock)
    elif args.which == "follow_cost":
        from bench import follow_cost

        result = follow_cost.run(followers=followers, concurrency=args.concurrency, postgres=bool(args.postgres))
    elif args.which == "contact_import":
        from bench import contact_import

        result = contact_import.run(contacts=args.contacts, groups=args.groups, concurrency=args.concurrency,
                                    postgres=bool(args.postgres))
    elif args.which == "sms":
        from bench import sms

        result = sms.run(seconds=args.seconds, rate=args.rate, postgres=bool(args.postgres))
    elif args.which == "first_screen":
        from bench import first_screen
        from bench.first_screen_plan import Sizes
        from bench.provenance import command_line

        # A smaller account has smaller groups: at most as many members as it has rooms.
        largest = args.largest_group or min(500, max(args.rooms, 5))
        sizes = Sizes(rooms=args.rooms, circles=args.circles, posts=args.posts, big_group=args.big_group,
                      history=args.history, largest_group=largest, smallest_group=min(5, largest))
        redis = args.redis if args.workers else None
        try:
            first_screen.check_options(sizes, samples, args.messages, bool(args.postgres), redis,
                                       args.keep_build, args.reuse_build)
        except ValueError as e:
            parser.error(str(e))
        result = first_screen.run(sizes, samples=samples, messages=args.messages, postgres=bool(args.postgres),
                                  redis=redis, concurrency=args.concurrency,
                                  command=command_line(sys.argv[1:] if argv is None else argv),
                                  keep_build=args.keep_build, reuse_build=args.reuse_build)
    elif args.which == "send_cost":
        from bench import send_cost
        from bench.provenance import command_line

        if not args.reuse_build:
            parser.error("send_cost needs --reuse-build DIR (an account kept by first_screen --keep-build)")
        if args.workers:
            parser.error("send_cost runs single processes (it profiles the one Synapse process of each side)")
        if args.messages < 10 or args.idle_seconds < 1:
            parser.error("send_cost: --messages at least 10, --idle-seconds at least 1")
        try:
            result = send_cost.run(args.reuse_build, bool(args.postgres), messages=args.messages,
                                   idle_seconds=args.idle_seconds, py_spy=args.py_spy,
                                   results_dir=os.path.join(os.path.dirname(os.path.abspath(__file__)), "results"),
                                   command=command_line(sys.argv[1:] if argv is None else argv))
        except ValueError as e:
            parser.error(str(e))
    elif args.which == "parcels":
        from bench import parcels
        from bench.parcels_plan import check_sizes

        people = 1000 if args.people is None else args.people
        try:
            check_sizes(people, args.shipments)
        except ValueError as e:
            parser.error(str(e))
        result = parcels.run(people=people, updates=args.shipments, postgres=bool(args.postgres))
    elif args.which == "discovery":
        from bench import discovery

        people = 100_000 if args.people is None else args.people
        if people < 1:
            parser.error(f"--people: at least 1, found {people}")
        result = discovery.run(people=people, postgres=bool(args.postgres))
    elif args.which == "angle":
        from bench import angle

        result = angle.run(postgres=bool(args.postgres))
    elif args.which == "audience":
        from bench import audience

        if not 0 < args.targeted <= followers:
            parser.error(f"--targeted: between 1 and --followers ({followers}), found {args.targeted}")
        if args.shard_size < 1:
            parser.error(f"--shard-size: at least 1, found {args.shard_size}")
        result = audience.run(followers=followers, shard_size=args.shard_size, targeted=args.targeted,
                              samples=args.samples if args.samples is not None else 20,
                              concurrency=args.concurrency, postgres=bool(args.postgres))
    elif args.which == "mute":
        from bench import mute

        result = mute.run(members=args.members, messages=args.messages, postgres=bool(args.postgres))
    result = {"benchmark": args.which, "when": time.strftime("%Y-%m-%dT%H:%M:%S"), **result}
    text = json.dumps(result, indent=2)
    print(text)
    out_dir = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results")
    os.makedirs(out_dir, exist_ok=True)
    backend = "workers" if args.workers else result["database"]
    with open(os.path.join(out_dir, f"{args.which}-{backend}.json"), "w", encoding="utf-8") as f:
        f.write(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
