"""Chat commands declared once, next to their help text.

The bridge bot and the merchant bot both answer commands typed in a DM. Each command is
declared with its arguments and a one-line help, and ``help`` is generated from those
declarations so it never drifts from what the bot really understands.
"""

from __future__ import annotations

import shlex
from collections.abc import Awaitable, Callable
from typing import Any, Generic, TypeVar

import attrs

Ctx = TypeVar("Ctx")
Handler = Callable[[Any, list[str]], Awaitable[None]]


@attrs.frozen
class Command:
    name: str
    handler: Handler
    help: str
    args: str = ""
    section: str = "General"


@attrs.frozen
class ParsedCommand:
    command: Command | None
    name: str
    args: list[str]


class CommandRegistry(Generic[Ctx]):
    """Holds the commands of one bot, keyed by name (a name may be two words, e.g. ``import confirm``)."""

    def __init__(self, bot_name: str, intro: str):
        self.bot_name = bot_name
        self.intro = intro
        self._commands: dict[str, Command] = {}

    def command(
        self, name: str, *, help: str, args: str = "", section: str = "General"
    ) -> Callable[[Handler], Handler]:
        def register(handler: Handler) -> Handler:
            if name in self._commands:
                raise ValueError(f"command {name!r} declared twice")
            self._commands[name] = Command(name, handler, help, args, section)
            return handler

        return register

    def parse(self, text: str) -> ParsedCommand | None:
        """Split a message into a command and its arguments; ``None`` for an empty message.

        The longest declared name wins, so ``import confirm`` beats ``import``.
        """
        try:
            words = shlex.split(text.strip())
        except ValueError:
            words = text.strip().split()
        if not words:
            return None
        if words[0].startswith("!"):
            words[0] = words[0][1:]
        lowered = [w.lower() for w in words]
        for length in (3, 2, 1):
            name = " ".join(lowered[:length])
            if len(lowered) >= length and name in self._commands:
                return ParsedCommand(self._commands[name], name, words[length:])
        return ParsedCommand(None, lowered[0], words[1:])

    def help_text(self) -> str:
        """Plain-text help, grouped by section, in declaration order."""
        lines = [self.intro, ""]
        sections: dict[str, list[Command]] = {}
        for cmd in self._commands.values():
            sections.setdefault(cmd.section, []).append(cmd)
        for section, commands in sections.items():
            lines.append(f"{section}:")
            for cmd in commands:
                usage = f"{cmd.name} {cmd.args}".strip()
                lines.append(f"  {usage} — {cmd.help}")
            lines.append("")
        return "\n".join(lines).rstrip()

    def unknown_text(self, name: str) -> str:
        return f"I don't know the command “{name}”. Send “help” to see what I can do."

    @property
    def names(self) -> list[str]:
        return list(self._commands)
