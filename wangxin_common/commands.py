"""Chat commands declared once, next to their help text, and answered by one dispatcher.

Every Wangxin bot answers commands typed in a DM the same way:

* A feature declares its commands in a ``CommandGroup[S]`` at module level, ``S`` being what its
  handlers need (a service, an API client). A handler receives a ``CommandContext[S]``: the
  message, those services as ``ctx.services``, and ``ctx.reply``. Declaring registers nothing
  anywhere else, so importing a feature file has no side effect.
* The bot's composition root builds a ``CommandRegistry`` and includes each group with its
  services; ``help`` is built in and generated from the declarations, so it never drifts from
  what the bot really understands.
* The bot wraps the registry in a ``Dispatcher`` with its way of replying and the errors it
  expects (a failed homeserver request, an API's "not found"), each mapped to a chat answer
  here once rather than caught in every handler. A handler can also raise ``CommandError``
  with the answer as its message.
"""

from __future__ import annotations

import logging
import shlex
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Generic, TypeVar

import attrs

logger = logging.getLogger(__name__)

S = TypeVar("S")
Handler = Callable[["CommandContext[S]", list[str]], Awaitable[None]]
# An expected exception type -> the chat answer for one such exception.
ErrorAnswers = Mapping[type[Exception], Callable[[Any], str]]
NO_ERRORS: ErrorAnswers = {}


class CommandError(Exception):
    """An expected failure of a command; its message is the answer, said as it is."""


@attrs.frozen
class Message:
    """A command as the user typed it, and where."""

    room_id: str
    sender: str
    event_id: str
    body: str
    content: Mapping[str, Any] = attrs.field(factory=dict)  # the whole event content (links, formatting)


Reply = Callable[[Message, str], Awaitable[None]]


@attrs.frozen
class CommandContext(Generic[S]):
    """What a handler works with: the message, its group's services, and a way to answer."""

    message: Message
    services: S
    _reply: Reply

    @property
    def room_id(self) -> str:
        return self.message.room_id

    @property
    def sender(self) -> str:
        return self.message.sender

    @property
    def event_id(self) -> str:
        return self.message.event_id

    @property
    def body(self) -> str:
        return self.message.body

    @property
    def content(self) -> Mapping[str, Any]:
        return self.message.content

    async def reply(self, text: str) -> None:
        await self._reply(self.message, text)


@attrs.frozen
class Command(Generic[S]):
    name: str
    handler: Handler[S]
    help: str
    args: str = ""
    section: str = "General"


class CommandGroup(Generic[S]):
    """The commands of one feature, in declaration order, shown under one section of ``help``.

    ``errors`` maps exceptions these handlers may raise to answers, before the dispatcher's own.
    """

    def __init__(self, section: str = "General", *, errors: ErrorAnswers = NO_ERRORS):
        self.section = section
        self.errors = errors
        self.commands: list[Command[S]] = []

    def command(self, name: str, *, help: str, args: str = "") -> Callable[[Handler[S]], Handler[S]]:
        def declare(handler: Handler[S]) -> Handler[S]:
            if any(c.name == name for c in self.commands):
                raise ValueError(f"command {name!r} declared twice")
            self.commands.append(Command(name, handler, help, args, self.section))
            return handler

        return declare


@attrs.frozen
class Included:
    """A command as a bot answers it: its declaration, its services, its group's error answers."""

    command: Command[Any]
    services: Any
    errors: ErrorAnswers = NO_ERRORS


@attrs.frozen
class ParsedCommand:
    command: Included | None
    name: str
    args: list[str]


class CommandRegistry:
    """The commands one bot answers, keyed by name (a name may be two words, e.g. ``import confirm``).

    ``help`` is always the first command.
    """

    def __init__(self, bot_name: str, intro: str):
        self.bot_name = bot_name
        self.intro = intro
        self._commands: dict[str, Included] = {}
        self.command("help", help="show this list of commands")(self._help)

    async def _help(self, ctx: CommandContext[None], args: list[str]) -> None:
        await ctx.reply(self.help_text())

    def include(self, group: CommandGroup[S], services: S) -> None:
        """Answer the group's commands, handing their handlers ``services``."""
        for command in group.commands:
            self._add(Included(command, services, group.errors))

    def command(
        self, name: str, *, help: str, args: str = "", section: str = "General"
    ) -> Callable[[Handler[None]], Handler[None]]:
        """Declare a command of this bot alone, with no services (``ctx.services`` is None)."""

        def declare(handler: Handler[None]) -> Handler[None]:
            self._add(Included(Command(name, handler, help, args, section), None))
            return handler

        return declare

    def _add(self, included: Included) -> None:
        name = included.command.name
        if name in self._commands:
            raise ValueError(f"command {name!r} declared twice")
        self._commands[name] = included

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
        sections: dict[str, list[Command[Any]]] = {}
        for included in self._commands.values():
            sections.setdefault(included.command.section, []).append(included.command)
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


class Dispatcher:
    """Answers one bot's messages: parse, find the command, run it with its context, and turn an
    expected failure into a plain answer.

    ``errors`` are the bot's expected exceptions (a group's own ``errors`` are tried first);
    ``CommandError`` always answers with its message. Anything else is logged and answered with
    ``fallback``, or, without one, raised to the caller (whose queue records it).
    """

    def __init__(self, registry: CommandRegistry, reply: Reply, *, errors: ErrorAnswers = NO_ERRORS,
                 fallback: str | None = None):
        self.registry = registry
        self._reply = reply
        self._errors = errors
        self._fallback = fallback

    async def dispatch(self, message: Message) -> bool:
        """Answer ``message`` if it is a command; False for an empty one (nothing to answer)."""
        parsed = self.registry.parse(message.body)
        if parsed is None:
            return False
        if parsed.command is None:
            await self._reply(message, self.registry.unknown_text(parsed.name))
            return True
        included = parsed.command
        ctx: CommandContext[Any] = CommandContext(message, included.services, self._reply)
        try:
            await included.command.handler(ctx, parsed.args)
        except Exception as e:
            answer = self._answer(included, e)
            if answer is None:
                raise
            await self._reply(message, answer)
        return True

    def _answer(self, included: Included, error: Exception) -> str | None:
        name, bot = included.command.name, self.registry.bot_name
        if isinstance(error, CommandError):
            return str(error)
        for errors in (included.errors, self._errors):
            for kind, explain in errors.items():
                if isinstance(error, kind):
                    logger.info("%s: command %r ended with %s: %s", bot, name, type(error).__name__, error)
                    return explain(error)
        if self._fallback is None:
            return None
        logger.exception("%s: command %r failed", bot, name)
        return self._fallback
