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
