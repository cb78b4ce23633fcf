"""The command line every bot shares: ``wangxin-<name>-bot -c <name>-bot.yaml [--log-level L]``.

The bot's own modules (matrix-nio and the rest) are imported only after the arguments are read
and logging is set up, so ``--help`` and argument errors answer at once.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable
from typing import Any

# Returns the bot's ``load_config(path)`` and ``run(config) -> exit status``, imported on call.
BotParts = Callable[[], tuple[Callable[[str], Any], Callable[[Any], int]]]


def bot_main(argv: list[str] | None, *, name: str, description: str, parts: BotParts) -> int:
    prog = f"wangxin-{name}-bot"
    parser = argparse.ArgumentParser(prog=prog, description=description)
    parser.add_argument("-c", "--config", required=True, help=f"path of {name}-bot.yaml")
    parser.add_argument("--log-level", default="INFO")
    args = parser.parse_args(argv)
    logging.basicConfig(level=args.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")

    from wangxin_common.config_errors import ConfigError

    load_config, run = parts()
    try:
        config = load_config(args.config)
    except ConfigError as e:
        print(f"{prog}: configuration error: {e}", file=sys.stderr)
        return 2
    return run(config)
