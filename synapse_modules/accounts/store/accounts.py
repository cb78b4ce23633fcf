"""SQL of accounts (``wangxin_accounts``), joined with the merchant circle's ``wangxin_merchants``
(each account's channel is a circle; see ``schema``)."""

from __future__ import annotations

from typing import Any

import attrs

from synapse_modules.accounts.rules import LIKE_ESCAPE, add_months, ascii_lower, like_escaped


@attrs.frozen
class Account:
    account_id: str
    kind: str
    owner: str
    merchant_id: str  # the circle's key: the merchant, or the account's own user
    name: str
    avatar_url: str | None
    description: str | None
    verified: bool
    registered_ts: int
    fees_waived_until_ts: int
    storefront_url: str | None
    adopted: bool  # made from a merchant that had no account
    published: bool  # its alias and org.wangxin.account state event are in the channel
    channel_room_id: str | None  # None until the channel (the circle) exists


@attrs.frozen
class NewAccount:
    account_id: str
    kind: str
    owner: str
    merchant_id: str
    name: str
    avatar_url: str | None
    description: str | None
    verified: bool
    registered_ts: int
    fees_waived_until_ts: int


# The merchant row's name and avatar once the channel exists: the merchant API changes them there.
_SELECT = (
    "SELECT a.account_id, a.kind, a.owner, a.merchant_id,"
    " CASE WHEN m.user_id IS NULL THEN a.name ELSE m.name END,"
    " CASE WHEN m.user_id IS NULL THEN a.avatar_url ELSE m.avatar_url END,"
    " a.description, a.verified, a.registered_ts, a.fees_waived_until_ts, a.storefront_url, a.adopted, a.published,"
    " m.circle_room_id"
    " FROM wangxin_accounts AS a LEFT JOIN wangxin_merchants AS m ON m.user_id = a.merchant_id"
)


def _account(row: Any) -> Account:
    return Account(row[0], row[1], row[2], row[3], row[4], row[5], row[6], bool(row[7]), int(row[8]), int(row[9]),
                   row[10], bool(row[11]), bool(row[12]), row[13])


def get_account_txn(txn: Any, account_id: str) -> Account | None:
    txn.execute(_SELECT + " WHERE a.account_id = ?", (account_id,))
    row = txn.fetchone()
    return _account(row) if row else None


def get_account_by_merchant_txn(txn: Any, merchant_id: str) -> Account | None:
    txn.execute(_SELECT + " WHERE a.merchant_id = ?", (merchant_id,))
    row = txn.fetchone()
    return _account(row) if row else None


def insert_account_txn(txn: Any, new: NewAccount) -> Account | None:
    """Insert unless the account id, or an account of the same channel, exists; returns what is
    stored under ``new.account_id`` (``None`` when another account has that channel)."""
    txn.execute(
        "INSERT INTO wangxin_accounts (account_id, kind, owner, merchant_id, name, avatar_url, description, verified,"
        " registered_ts, fees_waived_until_ts) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
        (new.account_id, new.kind, new.owner, new.merchant_id, new.name, new.avatar_url, new.description,
         int(new.verified), new.registered_ts, new.fees_waived_until_ts),
    )
    return get_account_txn(txn, new.account_id)


def update_account_txn(txn: Any, account_id: str, name: str, avatar_url: str | None, description: str | None,
                       verified: bool) -> None:
    txn.execute(
        "UPDATE wangxin_accounts SET name = ?, avatar_url = ?, description = ?, verified = ? WHERE account_id = ?",
        (name, avatar_url, description, int(verified), account_id),
    )


def set_published_txn(txn: Any, account_id: str, published: bool) -> None:
    txn.execute("UPDATE wangxin_accounts SET published = ? WHERE account_id = ?", (int(published), account_id))


def set_storefront_txn(txn: Any, account_id: str, url: str | None) -> None:
    txn.execute("UPDATE wangxin_accounts SET storefront_url = ? WHERE account_id = ?", (url, account_id))


def search_txn(txn: Any, text: str, limit: int) -> list[Account]:
    """Accounts with a channel whose name, description or id holds ``text`` (``LIKE``-escaped,
    compared in lower case: ASCII letters ignore case, other scripts match as typed), verified
    accounts first, then names that start with it, then by id. Reads every account: a scan."""
    needle = like_escaped(ascii_lower(text))
    contains, starts = f"%{needle}%", f"{needle}%"
    name = "LOWER(CASE WHEN m.user_id IS NULL THEN a.name ELSE m.name END)"
    escape = f"ESCAPE '{LIKE_ESCAPE}'"
    txn.execute(
        _SELECT + f" WHERE m.circle_room_id IS NOT NULL AND ({name} LIKE ? {escape}"
        f" OR LOWER(COALESCE(a.description, '')) LIKE ? {escape} OR a.account_id LIKE ? {escape})"
        f" ORDER BY a.verified DESC, CASE WHEN {name} LIKE ? {escape} THEN 0 ELSE 1 END, a.account_id LIMIT ?",
        (contains, contains, contains, starts, limit),
    )
    return [_account(row) for row in txn.fetchall()]


def unadopted_merchants_txn(txn: Any, limit: int) -> list[str]:
    """Merchants that are no account's channel yet (made by ``PUT /merchants``, or before the
    accounts module ran): one index probe per merchant."""
    txn.execute(
        "SELECT m.user_id FROM wangxin_merchants AS m WHERE NOT EXISTS"
        " (SELECT 1 FROM wangxin_accounts AS a WHERE a.merchant_id = m.user_id) ORDER BY m.user_id LIMIT ?",
        (limit,),
    )
    return [r[0] for r in txn.fetchall()]


def unpublished_accounts_txn(txn: Any, limit: int) -> list[str]:
    txn.execute("SELECT account_id FROM wangxin_accounts WHERE published = 0 ORDER BY account_id LIMIT ?", (limit,))
    return [r[0] for r in txn.fetchall()]


def adopt_merchant_txn(txn: Any, account_id: str, merchant_id: str, fee_waiver_months: int) -> Account | None:
    """Make the merchant an account of kind ``merchant`` under ``account_id``, owned by the
    merchant, registered when the merchant was; returns the merchant's account (this one, or the
    one made meanwhile), or ``None`` when ``account_id`` is taken by another account."""
    existing = get_account_by_merchant_txn(txn, merchant_id)
    if existing is not None:
        return existing
    txn.execute("SELECT name, avatar_url, created_ts FROM wangxin_merchants WHERE user_id = ?", (merchant_id,))
    row = txn.fetchone()
    if row is None:
        return None
    registered = int(row[2])
    txn.execute(
        "INSERT INTO wangxin_accounts (account_id, kind, owner, merchant_id, name, avatar_url, registered_ts,"
        " fees_waived_until_ts, adopted) VALUES (?, 'merchant', ?, ?, ?, ?, ?, ?, 1) ON CONFLICT DO NOTHING",
        (account_id, merchant_id, merchant_id, row[0], row[1], registered, add_months(registered, fee_waiver_months)),
    )
    return get_account_by_merchant_txn(txn, merchant_id)
