from __future__ import annotations

from bots.merchant.commands import commands as merchant_commands
from bridges.management import commands as bridge_commands
from wangxin_common.commands import CommandRegistry


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
    for registry in (bridge_commands, merchant_commands):
        text = registry.help_text()
        for name in registry.names:
            assert f"  {name}" in text
