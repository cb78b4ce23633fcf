"""``wangxin-discovery-bot -c discovery-bot.yaml``: run the discovery bot."""

from __future__ import annotations

import argparse
import logging
import sys


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="wangxin-discovery-bot", description="The Wangxin discovery bot")
    parser.add_argument("-c", "--config", required=True, help="path of discovery-bot.yaml")
    parser.add_argument("--log-level", default="INFO")
    args = parser.parse_args(argv)
    logging.basicConfig(level=args.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")

    from bots.discovery.bot import run
    from bots.discovery.config import load_config
    from wangxin_common.config_errors import ConfigError

    try:
        config = load_config(args.config)
    except ConfigError as e:
        print(f"wangxin-discovery-bot: configuration error: {e}", file=sys.stderr)
        return 2
    return run(config)


if __name__ == "__main__":
    sys.exit(main())
