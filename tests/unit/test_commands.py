from __future__ import annotations

import logging

import pytest

from bots.merchant.bot import merchant_commands
from bridges import import_commands, mute_commands, sms_commands
from bridges.app import bridge_commands
from bridges.management import GENERAL
from wangxin_common.commands import (
    CommandContext,
    CommandError,
    CommandGroup,
    CommandRegistry,
    Dispatcher,
    Message,
)


async def _noop(ctx, args):  # pragma: no cover - never called
    return None


def test_longest_declared_name_wins_and_arguments_keep_quotes() -> None:
    registry: CommandRegistry = CommandRegistry("t", "intro")
    registry.command("import", help="preview")(_noop)
    registry.command("import confirm", help="run")(_noop)
    parsed = registry.parse("Import CONFIRM now")
    assert parsed.name == "import confirm" and parsed.args == ["now"]
    parsed = registry.parse('import "my contacts.vcf"')
    assert parsed.name == "import" and parsed.args == ["my contacts.vcf"]
    assert registry.parse("   ") is None
    assert registry.parse("!import").name == "import"
    unknown = registry.parse("frob it")
    assert unknown.command is None and unknown.name == "frob"


def test_unbalanced_quotes_do_not_break_parsing() -> None:
    registry: CommandRegistry = CommandRegistry("t", "intro")
    registry.command("sms", help="text a number")(_noop)
    assert registry.parse('sms +86 "hello').name == "sms"


def test_help_lists_every_declared_command() -> None:
    # The registries as the bots assemble them; help needs the declarations, not the services.
    for registry in (bridge_commands("example.org", None, None, None), merchant_commands(None)):
        text = registry.help_text()
        for name in registry.names:
            assert f"  {name}" in text


def test_a_post_names_what_is_wrong_with_its_product() -> None:
    from bots.merchant.commands import MAX_LINK_BYTES, product_problem

    def problem(price: str = "9.90", url: str = "https://shop.example/tea", currency: str = "CNY",
                title: str = "Tea") -> str | None:
        return product_problem(title, price, url, currency)

    assert problem() is None and problem("0") is None and problem("1000000000") is None
    assert problem("12.3456") is None
    for price, words in [("nan", "not a number"), ("-Infinity", "not a number"), ("sNaN", "not a number"),
                         ("1e308", "too large"), ("1000000000.01", "too large"), ("-5", "negative"),
                         ("1e2", "plain digits"), ("1.23456", "at most 4 decimals"), ("٣", "plain digits"),
                         ("9,90", "like 9.90"), ("", "like 9.90")]:
        answer = problem(price)
        assert answer and words in answer and f"“{price}”" in answer, (price, answer)
    assert problem(url="https://s.example/" + "a" * (MAX_LINK_BYTES - 18)) is None
    answer = problem(url="https://s.example/" + "a" * (MAX_LINK_BYTES - 17))
    assert answer and "buy link" in answer and f"{MAX_LINK_BYTES + 1} characters" in answer
    assert "https://" in (problem(url="ftp://shop.example/tea") or "")
    assert "three-letter" in (problem(currency="EURO") or "")
    assert "title" in (problem(title="T" * 201) or "")


# -- the dispatcher every bot uses ----------------------------------------------------------------

class LookupFailed(Exception):
    pass


class Refused(Exception):
    pass


def _message(body: str) -> Message:
    return Message("!dm:example.org", "@alice:example.org", "$ask", body, {"body": body})


def _bot(**options) -> tuple[Dispatcher, list[tuple[str, str]], list[object]]:
    """A registry with one group whose services are a list; replies are recorded."""
    seen: list[object] = []
    group: CommandGroup[list[object]] = CommandGroup("Things", errors={Refused: lambda e: f"group says: {e}"})

    @group.command("look", args="<what>", help="look at something")
    async def _look(ctx: CommandContext[list[object]], args: list[str]) -> None:
        ctx.services.append((ctx.room_id, ctx.sender, ctx.event_id, ctx.body, args))
        await ctx.reply(f"looked at {' '.join(args)}")

    @group.command("fail", args="<how>", help="fail in some way")
    async def _fail(ctx: CommandContext[list[object]], args: list[str]) -> None:
        kind = {"lookup": LookupFailed, "refused": Refused, "said": CommandError, "bug": ZeroDivisionError}[args[0]]
        raise kind("no luck")

    registry = CommandRegistry("Test bot", "I'm a test bot.")
    registry.include(group, seen)
    replies: list[tuple[str, str]] = []

    async def reply(message: Message, text: str) -> None:
        replies.append((message.event_id, text))

    return Dispatcher(registry, reply, **options), replies, seen


async def test_the_dispatcher_runs_a_command_with_its_groups_services() -> None:
    dispatcher, replies, seen = _bot()
    assert await dispatcher.dispatch(_message('look "the sea"')) is True
    assert seen == [("!dm:example.org", "@alice:example.org", "$ask", 'look "the sea"', ["the sea"])]
    assert replies == [("$ask", "looked at the sea")]


async def test_help_and_unknown_commands_are_answered_from_the_declarations() -> None:
    dispatcher, replies, _ = _bot()
    await dispatcher.dispatch(_message("help"))
    assert replies[-1][1] == ("I'm a test bot.\n\nGeneral:\n  help — show this list of commands\n\n"
                              "Things:\n  look <what> — look at something\n  fail <how> — fail in some way")
    await dispatcher.dispatch(_message("frobnicate now"))
    assert replies[-1][1] == "I don't know the command “frobnicate”. Send “help” to see what I can do."
    assert await dispatcher.dispatch(_message("  ")) is False and len(replies) == 2


async def test_expected_failures_are_answered_once_by_the_dispatcher(caplog) -> None:
    dispatcher, replies, _ = _bot(errors={LookupFailed: lambda e: f"bot says: {e}", Refused: lambda e: "never"},
                                  fallback="Something broke.")
    await dispatcher.dispatch(_message("fail lookup"))
    await dispatcher.dispatch(_message("fail refused"))  # the group's answer wins over the bot's
    await dispatcher.dispatch(_message("fail said"))
    with caplog.at_level(logging.ERROR, logger="wangxin_common.commands"):
        await dispatcher.dispatch(_message("fail bug"))
    assert [text for _, text in replies] == ["bot says: no luck", "group says: no luck", "no luck", "Something broke."]
    assert any("'fail' failed" in r.getMessage() and r.exc_info for r in caplog.records)


async def test_without_a_fallback_an_unexpected_failure_reaches_the_caller() -> None:
    """The bridge's inbox records such an error against the event rather than answering it."""
    dispatcher, replies, _ = _bot()
    with pytest.raises(ZeroDivisionError):
        await dispatcher.dispatch(_message("fail bug"))
    with pytest.raises(LookupFailed):
        await dispatcher.dispatch(_message("fail lookup"))
    await dispatcher.dispatch(_message("fail said"))
    assert replies == [("$ask", "no luck")]


def test_a_command_is_declared_once() -> None:
    group: CommandGroup[None] = CommandGroup()
    group.command("look", help="look")(_noop)
    with pytest.raises(ValueError, match="'look' declared twice"):
        group.command("look", help="again")(_noop)
    registry = CommandRegistry("t", "intro")
    registry.include(group, None)
    with pytest.raises(ValueError, match="'look' declared twice"):
        registry.include(group, None)
    with pytest.raises(ValueError, match="'help' declared twice"):  # help is built in
        registry.command("help", help="mine")(_noop)


def test_the_bridge_answers_every_features_commands_in_help_order() -> None:
    names = bridge_commands("example.org", None, None, None).names
    declared = [c.name for g in (GENERAL, import_commands.COMMANDS, mute_commands.COMMANDS, sms_commands.COMMANDS)
                for c in g.commands]
    assert names == ["help", *declared]
    assert {"version", "import confirm", "mute", "vips", "sms", "invite-sms revoke"} <= set(names)
