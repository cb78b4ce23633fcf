"""Who may do what to an account, for the HTTP parts that came after ``http`` (auto-reply,
support rooms, stats): the account or 404, the owner or a server admin or 403, and the merchant
bot acting for the person who wrote to it."""

from __future__ import annotations

from synapse.module_api import ModuleApi, SynapseRequest, errors

from synapse_modules._http import USER_ID_RE
from synapse_modules.accounts.rules import validate_account_id
from synapse_modules.accounts.store import AccountsStore
from synapse_modules.accounts.store.accounts import Account, get_account_txn


def not_found(account_id: str) -> Exception:
    return errors.SynapseError(404, f"No account {account_id}", errors.Codes.NOT_FOUND)


def forbidden(message: str) -> Exception:
    return errors.SynapseError(403, message, errors.Codes.FORBIDDEN)


async def requester_of(api: ModuleApi, request: SynapseRequest) -> str:
    requester = await api.get_user_by_req(request)
    return str(requester.user.to_string())


async def acting_for(api: ModuleApi, request: SynapseRequest, bot: str | None) -> str:
    """The caller; or, when the caller is the merchant bot (the accounts' bot, trusted as the
    merchant circle trusts it with merchants' details), the local user named by ``?user_id=``,
    the person who wrote the command to the bot."""
    caller = await requester_of(api, request)
    if bot is None or caller != bot:
        return caller
    values = request.args.get(b"user_id")
    user_id = values[0].decode("utf-8", "replace") if values else ""
    if not USER_ID_RE.match(user_id) or not api.is_mine(user_id):
        raise errors.SynapseError(400, "'user_id' must name the local user the bot acts for",
                                  errors.Codes.INVALID_PARAM)
    return user_id


async def account_or_404(store: AccountsStore, account_id: str) -> Account:
    account = await store.run(get_account_txn, validate_account_id(account_id))
    if account is None:
        raise not_found(account_id)
    return account


async def require_owner_or_admin(api: ModuleApi, user_id: str, account: Account) -> None:
    if user_id != account.owner and not await api.is_user_admin(user_id):
        raise forbidden("Only the account's owner or a server admin may do this")


def channel_of(account: Account) -> str:
    if account.channel_room_id is None:
        raise errors.SynapseError(409, f"The channel of {account.account_id} is not made yet: PUT the account again",
                                  errors.Codes.INVALID_PARAM)
    return account.channel_room_id
