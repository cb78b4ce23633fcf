"""The accounts store's transactions on SQLite, beside the merchant circle's tables: an account
and its channel (the merchant row) read as one, one account per channel, search (verified first,
wildcards matching themselves, bounded), merchants made accounts with nothing lost, and the
sweep's questions. (The e2e tests run the same SQL on PostgreSQL.)"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from synapse_modules.accounts.rules import add_months
from synapse_modules.accounts.store.accounts import (
    NewAccount,
    adopt_merchant_txn,
    get_account_by_merchant_txn,
    get_account_txn,
    insert_account_txn,
    search_txn,
    set_published_txn,
    set_storefront_txn,
    unadopted_merchants_txn,
    unpublished_accounts_txn,
    update_account_txn,
)
from synapse_modules.accounts.store.follows import record_own_follow_txn
from synapse_modules.accounts.store.schema import SCHEMA
from synapse_modules.merchant_circle.store.follows import follow_state_txn, unfollow_txn
from synapse_modules.merchant_circle.store.merchants import Merchant, insert_merchant_txn, update_merchant_profile_txn
from tests.unit.sqlite_tables import tables

NOW = 1_700_000_000_000


@pytest.fixture
def txn() -> Iterator[Any]:
    with tables(SCHEMA) as cur:
        yield cur


def new(account_id: str, merchant_id: str, name: str = "Tea House", kind: str = "merchant", verified: bool = False,
        description: str | None = None) -> NewAccount:
    return NewAccount(account_id, kind, "@owner:hs", merchant_id, name, None, description, verified, NOW,
                      add_months(NOW, 36))


def merchant(txn: Any, user_id: str, name: str, created: int = NOW) -> None:
    insert_merchant_txn(txn, Merchant(user_id, name, None, f"!room-{user_id}"), created)


def test_an_account_reads_its_channel_from_the_merchant_row(txn: Any) -> None:
    stored = insert_account_txn(txn, new("tea", "@tea:hs", verified=True, description="Oolong"))
    assert stored is not None and stored.channel_room_id is None and stored.name == "Tea House"
    assert (stored.verified, stored.description, stored.published) == (True, "Oolong", False)
    merchant(txn, "@tea:hs", "Tea House")
    update_merchant_profile_txn(txn, "@tea:hs", "Tea House 2", "mxc://hs/a")  # the merchant API renames it
    account = get_account_txn(txn, "tea")
    assert account is not None and account.channel_room_id == "!room-@tea:hs"
    assert (account.name, account.avatar_url) == ("Tea House 2", "mxc://hs/a")
    assert get_account_by_merchant_txn(txn, "@tea:hs") == account
    update_account_txn(txn, "tea", "ignored once the channel exists", None, "Green", False)
    set_published_txn(txn, "tea", True)
    set_storefront_txn(txn, "tea", "https://shop.example/")
    account = get_account_txn(txn, "tea")
    assert account is not None
    assert (account.description, account.verified, account.published) == ("Green", False, True)
    assert account.storefront_url == "https://shop.example/" and account.name == "Tea House 2"


def test_one_account_per_id_and_per_channel(txn: Any) -> None:
    first = insert_account_txn(txn, new("tea", "@tea:hs"))
    assert insert_account_txn(txn, new("tea", "@other:hs", name="Other")) == first  # the id's first record stays
    assert insert_account_txn(txn, new("tea2", "@tea:hs")) is None  # that channel is another account's
    assert get_account_txn(txn, "tea2") is None


def test_search_finds_names_descriptions_and_ids_verified_first(txn: Any) -> None:
    for account_id, name, verified, description in [
        ("aaa", "Green Tea Garden", False, None),
        ("bbb", "Tea Palace", True, None),
        ("ccc", "Coffee", False, "we also sell tea"),
        ("ddd", "Noodles", True, None),
        ("tea-id", "Books", False, None),
        ("eee", "茶馆 Teahouse", False, None),
    ]:
        insert_account_txn(txn, new(account_id, f"@{account_id}:hs", name=name, verified=verified,
                                    description=description))
        merchant(txn, f"@{account_id}:hs", name)
    insert_account_txn(txn, new("fff", "@fff:hs", name="Tea without channel"))  # no merchant row yet: not found
    # Verified first, then names starting with the text, then by id.
    assert [a.account_id for a in search_txn(txn, "TEA", 10)] == ["bbb", "aaa", "ccc", "eee", "tea-id"]
    assert [a.account_id for a in search_txn(txn, "garden", 10)] == ["aaa"]
    assert [a.account_id for a in search_txn(txn, "茶", 10)] == ["eee"]
    assert len(search_txn(txn, "tea", 2)) == 2


def test_search_wildcards_match_only_themselves(txn: Any) -> None:
    for account_id, name in [("pct", "100% tea"), ("plain", "1000 teas"), ("under", "a_b"), ("axb", "axb")]:
        insert_account_txn(txn, new(account_id, f"@{account_id}:hs", name=name))
        merchant(txn, f"@{account_id}:hs", name)
    assert [a.account_id for a in search_txn(txn, "100%", 10)] == ["pct"]
    assert [a.account_id for a in search_txn(txn, "a_b", 10)] == ["under"]
    assert search_txn(txn, "%", 10)[0].account_id == "pct" and len(search_txn(txn, "%", 10)) == 1


def test_a_merchant_becomes_an_account_with_its_registration_and_nothing_else_changes(txn: Any) -> None:
    created = NOW - 400 * 24 * 3600 * 1000
    merchant(txn, "@shop:hs", "Old Shop", created)
    merchant(txn, "@taken:hs", "Has one")
    insert_account_txn(txn, new("taken", "@taken:hs"))
    assert unadopted_merchants_txn(txn, 10) == ["@shop:hs"]
    account = adopt_merchant_txn(txn, "shop", "@shop:hs", 36)
    assert account is not None
    assert (account.account_id, account.kind, account.owner, account.merchant_id) == ("shop", "merchant", "@shop:hs",
                                                                                     "@shop:hs")
    assert (account.registered_ts, account.fees_waived_until_ts) == (created, add_months(created, 36))
    assert account.adopted and not account.published and account.channel_room_id == "!room-@shop:hs"
    assert unadopted_merchants_txn(txn, 10) == []
    assert adopt_merchant_txn(txn, "shop-2", "@shop:hs", 36) == account  # once
    merchant(txn, "@next:hs", "Next")
    assert adopt_merchant_txn(txn, "shop", "@next:hs", 36) is None  # that id is taken: the caller tries the next
    assert adopt_merchant_txn(txn, "nobody", "@nobody:hs", 36) is None  # not a merchant
    assert set(unpublished_accounts_txn(txn, 10)) == {"shop", "taken"}
    set_published_txn(txn, "shop", True)
    assert unpublished_accounts_txn(txn, 10) == ["taken"]


def test_a_follow_asked_for_undoes_an_unfollow_and_files_the_channel(txn: Any) -> None:
    unfollow_txn(txn, "@tea:hs", "@buyer:hs", NOW)
    assert follow_state_txn(txn, "@tea:hs", "@buyer:hs") == "unfollowed"
    record_own_follow_txn(txn, "@tea:hs", "@buyer:hs", "!channel", NOW)
    assert follow_state_txn(txn, "@tea:hs", "@buyer:hs") == "following"
    txn.execute("SELECT kind, user_id, merchant_id, room_id, reason FROM wangxin_circle_jobs")
    assert txn.fetchall() == [("file", "@buyer:hs", "@tea:hs", "!channel", "joined")]
