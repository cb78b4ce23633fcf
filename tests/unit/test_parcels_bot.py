"""The parcels bot's and the merchant bot's parcel answers: reading the module's JSON, checking
what people type, the texts, and the commands on a fake API (who is asked for what)."""

from __future__ import annotations

from typing import Any
from zoneinfo import ZoneInfo

import pytest

from bots.merchant import commands as merchant_commands
from bots.merchant.bot import merchant_commands as merchant_registry
from bots.merchant.circle_api import MerchantInfo, NotAMerchant
from bots.parcels import text
from bots.parcels.bot import parcels_commands
from bots.parcels.commands import NOT_LOCAL, ParcelsServices
from synapse_modules.parcels.cards import Parcel, parcel_json
from synapse_modules.parcels.carriers import CarrierRegistry
from synapse_modules.parcels.rules import FINAL, STATUS_WORDS, Update, parcel_state
from wangxin_common.commands import Dispatcher, Message

TZ = ZoneInfo("Asia/Shanghai")
T0 = 1_735_000_000_000  # 2024-12-24 08:26:40 in Shanghai
HOUR = 3_600_000


def module_json(shipment_id: str, number: str, updates: list[Update], *, carrier: str = "sf",
                order_id: str | None = None) -> dict[str, Any]:
    """A parcel exactly as the module's GET /parcels writes it."""
    parcel = Parcel(shipment_id, carrier, number, parcel_state(updates), order_id)
    view = parcel_json(parcel, CarrierRegistry.with_defaults())
    view.update(merchant=None, event_id=None, history=[u.to_json() for u in parcel.state.history])
    return view


MOVING = module_json("s1", "SF1001", [
    Update("created", T0), Update("picked_up", T0 + HOUR, "Shenzhen"),
    Update("in_transit", T0 + 2 * HOUR, "Hangzhou hub", T0 + 30 * HOUR, "arrived at the hub")], order_id="o-1")
DELIVERED = module_json("s2", "ZT2002", [Update("created", T0), Update("delivered", T0 + 5 * HOUR, "Xihu")],
                        carrier="zto")
UNKNOWN_CARRIER = module_json("s3", "XX3003", [Update("exception", T0 + HOUR, None, None, "address unclear")],
                              carrier="acme")


# -- the module's words and JSON -------------------------------------------------------------------


def test_the_bot_says_the_statuses_in_the_words_of_the_cards() -> None:
    assert dict(text.STATUS_WORDS) == dict(STATUS_WORDS)
    assert text.FINAL == FINAL


def test_a_parcel_is_read_from_the_modules_json() -> None:
    p = text.parse_parcel(MOVING)
    assert (p.shipment_id, p.order_id, p.carrier_code, p.carrier_name, p.carrier_name_zh) == \
        ("s1", "o-1", "sf", "SF Express", "顺丰速运")
    assert (p.tracking_number, p.status, p.location, p.eta, p.detail) == \
        ("SF1001", "in_transit", "Hangzhou hub", T0 + 30 * HOUR, "arrived at the hub")
    assert p.tracking_url and p.tracking_url.endswith("SF1001")
    assert [s.status for s in p.history] == ["created", "picked_up", "in_transit"] and p.active
    unknown = text.parse_parcel(UNKNOWN_CARRIER)
    assert (unknown.carrier_name, unknown.carrier_name_zh, unknown.tracking_url) == ("acme", None, None)
    assert not text.parse_parcel(DELIVERED).active


@pytest.mark.parametrize("broken", [{}, {**MOVING, "carrier": "sf"}, {**MOVING, "at": "soon"},
                                    {**MOVING, "tracking_number": None}])
def test_a_parcel_without_what_every_parcel_has_is_refused(broken: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        text.parse_parcel(broken)


# -- what people type --------------------------------------------------------------------------------


def test_tracking_numbers_and_order_ids_are_checked_with_a_sentence() -> None:
    assert text.tracking_number_from(["SF", "1001"]) == "SF1001"
    assert text.tracking_number_problem("SF1001") is None
    assert text.tracking_number_problem("x" * 64) is None
    problem = text.tracking_number_problem("x" * 500)
    assert problem and "500 characters" in problem and "at most 64" in problem
    assert "characters that tracking numbers never have" in (text.tracking_number_problem("SF\x001") or "")
    assert text.order_id_problem("o-1") is None and text.order_id_problem("o " * 100) is None
    assert "300 characters" in (text.order_id_problem("o" * 300) or "")
    assert text.order_id_problem("o\n1")


def test_a_tracking_number_matches_whatever_its_letter_case() -> None:
    parcels = text.parse_parcels([MOVING, DELIVERED, "not a parcel"])
    assert [p.shipment_id for p in text.matching(parcels, "sf1001")] == ["s1"]
    assert text.matching(parcels, "SF100") == []


# -- the answers ----------------------------------------------------------------------------------------


def test_track_lists_the_parcels_on_their_way_only() -> None:
    parcels = text.parse_parcels([MOVING, DELIVERED, UNKNOWN_CARRIER])
    answer = text.active_parcels_answer(parcels, TZ)
    assert answer.startswith("Your parcels on their way (2):")
    assert "• 顺丰速运 SF Express SF1001 — 运输中 · In transit, Hangzhou hub, 12-24 10:26; ETA 12-25 14:26" in answer
    assert "• acme XX3003 — 物流异常 · Delivery problem, 12-24 09:26" in answer
    assert "ZT2002" not in answer
    assert "track <tracking number>" in answer
    nothing = text.active_parcels_answer(text.parse_parcels([DELIVERED]), TZ)
    assert nothing.startswith("You have no parcel on its way") and "1 was delivered or returned" in nothing
    assert text.active_parcels_answer([], TZ) == "You have no parcel on its way right now."


def test_track_with_a_number_gives_the_whole_history_newest_first() -> None:
    parcels = text.parse_parcels([MOVING])
    answer = text.tracked_parcel_answer("sf1001", text.matching(parcels, "sf1001"), TZ)
    lines = answer.splitlines()
    assert lines[0] == "📦 顺丰速运 SF Express · SF1001"
    assert lines[1] == "Status: 运输中 · In transit (2024-12-24 10:26 (UTC+8))"
    assert "ETA: 2024-12-25 14:26 (UTC+8)" in lines and "Order: o-1" in lines
    assert any(line.startswith("Track: https://") for line in lines)
    history = [line for line in lines if line.startswith("• ")]
    assert history == ["• 12-24 10:26  运输中 · In transit — Hangzhou hub (arrived at the hub)",
                       "• 12-24 09:26  已揽收 · Picked up — Shenzhen",
                       "• 12-24 08:26  待揽收 · Shipment created"]
    unknown = text.tracked_parcel_answer("NOPE1", [], TZ)
    assert "no parcel with the tracking number “NOPE1”" in unknown


def test_an_answer_stays_small_whatever_the_platform_wrote() -> None:
    # 200 updates of 256 Chinese characters of location and detail each.
    updates = [Update("in_transit", T0 + i, "仓" * 256, None, "详" * 256) for i in range(200)]
    huge = text.parse_parcels([module_json("s9", "SF9", updates)] * 5)
    answer = text.tracked_parcel_answer("SF9", huge, TZ)
    assert len(answer) <= text.MAX_ANSWER_CHARS and answer.endswith("(not shown).")
    assert len(answer.encode()) < 60_000
    many = text.parse_parcels([module_json(f"s{i}", f"SF{i}", [Update("created", T0 + i, "仓" * 256)])
                               for i in range(150)])
    listing = text.active_parcels_answer(many, TZ)
    assert listing.count("\n• ") == text.LIST_LINES and "… and 130 more" in listing
    assert len(listing) <= text.MAX_ANSWER_CHARS + 100


def test_a_merchants_orders_and_one_order() -> None:
    shipments = text.parse_parcels([MOVING, DELIVERED])
    answer = text.merchant_orders_answer(shipments, TZ)
    assert answer.startswith("Your recent shipments (2), newest first:")
    assert "• order o-1: 顺丰速运 SF Express SF1001 — 运输中 · In transit" in answer
    assert "• order (none): 中通快递 ZTO Express ZT2002 — 已签收 · Delivered" in answer
    one = text.merchant_order_answer("o-1", shipments[:1], TZ)
    assert "Order: o-1" in one and "History (newest first):" in one
    assert "no recent shipment for the order “o-9”" in text.merchant_order_answer("o-9", [], TZ)
    assert text.merchant_orders_answer([], TZ).startswith("You have no shipment")


# -- the commands, on fake APIs ------------------------------------------------------------------------


class FakeParcelsApi:
    """Answers as the module would: each person's own parcels, each merchant's own shipments."""

    def __init__(self) -> None:
        self.asked: list[tuple[str, str | None]] = []
        self.of_user = {"@fay:x": [MOVING, DELIVERED], "@gus:x": [UNKNOWN_CARRIER]}
        self.of_merchant = {"@shop:x": [MOVING]}

    async def parcels_of(self, user_id: str) -> list[text.ParcelView]:
        self.asked.append((user_id, None))
        return text.parse_parcels(self.of_user.get(user_id, []))

    async def shipments_of_merchant(self, merchant: str, order_id: str | None = None) -> list[text.ParcelView]:
        self.asked.append((merchant, order_id))
        found = self.of_merchant.get(merchant, [])
        return text.parse_parcels(s for s in found if order_id is None or s.get("order_id") == order_id)


class FakeCircle:
    async def merchant(self, user_id: str) -> MerchantInfo:
        if user_id != "@shop:x":
            raise NotAMerchant(user_id)
        return MerchantInfo(user_id, "Shop", "!circle:x", 0, 0)


class Chat:
    """A bot's dispatcher with its answers collected."""

    def __init__(self, registry: Any, errors: dict[type[Exception], Any] | None = None):
        self.dispatcher = Dispatcher(registry, self._answer, fallback="wrong", errors=errors or {})
        self.answers: list[str] = []

    async def _answer(self, message: Message, answer: str) -> None:
        self.answers.append(answer)

    async def ask(self, sender: str, body: str) -> str:
        self.answers.clear()
        await self.dispatcher.dispatch(Message("!room:x", sender, "$e", body))
        [answer] = self.answers
        return answer


def parcels_chat(api: FakeParcelsApi) -> Chat:
    return Chat(parcels_commands(ParcelsServices(api, TZ, "x")))  # type: ignore[arg-type]


async def test_track_asks_for_the_sender_and_nobody_else() -> None:
    api = FakeParcelsApi()
    chat = parcels_chat(api)
    answer = await chat.ask("@fay:x", "track")
    assert "SF1001" in answer and "ZT2002" not in answer
    assert "History (newest first):" in await chat.ask("@fay:x", "Track sf 1001")
    # Gus's tracking number, asked by Fay: the same answer as a number nobody has.
    assert await chat.ask("@fay:x", "track XX3003") == text.tracked_parcel_answer("XX3003", [], TZ)
    assert {user for user, _ in api.asked} == {"@fay:x"}
    # Someone of another server is told so; the module is not asked for them.
    assert await chat.ask("@fay:elsewhere", "track") == NOT_LOCAL
    assert {user for user, _ in api.asked} == {"@fay:x"}


async def test_bad_track_input_is_answered_with_a_sentence_without_asking_the_module() -> None:
    api = FakeParcelsApi()
    chat = parcels_chat(api)
    answer = await chat.ask("@fay:x", "track " + "9" * 500)
    assert "500 characters" in answer and "at most 64" in answer
    assert "never have" in await chat.ask("@fay:x", "track SF\u200b1")
    assert api.asked == []
    assert "no parcel with the tracking number" in await chat.ask("@fay:x", 'track "unbalanced')
    assert "I don't know the command “trak”" in await chat.ask("@fay:x", "trak")


async def test_help_of_the_parcels_bot_explains_track() -> None:
    answer = await parcels_chat(FakeParcelsApi()).ask("@fay:x", "help")
    assert "parcels bot" in answer and "\n  track [tracking number] — " in answer


def merchant_chat(api: FakeParcelsApi | None) -> Chat:
    services = merchant_commands.MerchantServices(FakeCircle(), None, None, api, TZ)  # type: ignore[arg-type]
    return Chat(merchant_registry(services), {NotAMerchant: lambda e: merchant_commands.NOT_A_MERCHANT})


async def test_orders_answer_the_merchant_with_its_own_shipments() -> None:
    api = FakeParcelsApi()
    chat = merchant_chat(api)
    answer = await chat.ask("@shop:x", "orders")
    assert "SF1001" in answer and "order o-1" in answer
    answer = await chat.ask("@shop:x", "order o-1")
    assert "Order: o-1" in answer and "History" in answer
    assert "300 characters" in await chat.ask("@shop:x", "order " + "o" * 300)
    assert (await chat.ask("@shop:x", "order")).startswith("Usage: order <order id>")
    assert api.asked == [("@shop:x", None), ("@shop:x", "o-1")]
    assert await chat.ask("@fay:x", "orders") == merchant_commands.NOT_A_MERCHANT
    help_text = await chat.ask("@shop:x", "help")
    assert "\n  orders — " in help_text and "\n  order <order id> — " in help_text


async def test_orders_without_the_service_secret_say_so() -> None:
    assert await merchant_chat(None).ask("@shop:x", "orders") == merchant_commands.NO_PARCELS_API


def test_a_reply_fallback_is_not_part_of_the_command() -> None:
    from bots.common.matrix_bot import command_text

    assert command_text("> <@parcels:x> 📦 card\n> more\n\ntrack SF1") == "track SF1"
    assert command_text("track SF1") == "track SF1"
    assert command_text("> not a fallback") == "> not a fallback"


def test_the_bots_configs_name_a_wrong_key() -> None:
    from bots.merchant.config import parse_config as merchant_config
    from bots.parcels.config import parse_config as parcels_config
    from wangxin_common.config_errors import ConfigError, Section

    base = {"homeserver_url": "http://h", "user_id": "@parcels:x", "password": "p", "store_dir": "/tmp/x"}
    config = parcels_config(Section({**base, "service_secret": "s" * 20}))
    assert config.time_zone == ZoneInfo("Asia/Shanghai") and config.account.device_name == "Wangxin parcels bot"
    with pytest.raises(ConfigError) as e:
        parcels_config(Section(base))
    assert e.value.path == ("service_secret",)
    with pytest.raises(ConfigError) as e:
        parcels_config(Section({**base, "service_secret": "s" * 20, "time_zone": "Mars/Olympus"}))
    assert e.value.path == ("time_zone",)
    assert merchant_config(Section(base)).service_secret is None
    with pytest.raises(ConfigError) as e:
        merchant_config(Section({**base, "service_secrets": "x"}))
    assert e.value.path == ("service_secrets",)
