"""SMS invitations (发短信, 提醒安装): invite people who are not here yet by text message.

``invite-sms`` texts a personal link to contacts kept as *invitable* by an import, or to any
numbers the user names. The link (``{invite_base_url}/{token}``, token = invitation id + MAC)
opens a page saying who invited them and how to join. When the invited number is bound to an
account (phone sign-up, or adding the number later), the contact-import arrival hook opens the
inviter's direct chat with them and invites them to the groups that held their placeholder; the
invitation is then ``joined``. ``invite-sms revoke`` withdraws one: the link stops working and
signing up no longer connects them to the inviter.

Privacy: a person who has not turned ``discoverable`` on is normally invisible to imports. An
SMS invitation is the exception the invitee sees coming: the module is told which inviter
invited which number, and reports that number's sign-up to the bridge for those inviters only.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import html
import logging
import time
from typing import Any

from bridges.config import BridgeConfig
from bridges.contact_import.store import ImportStore
from bridges.contact_import.store.rooms import Invitable
from bridges.http import Router
from bridges.matrix_client import MatrixClient, MatrixRequestError
from bridges.sms.api import OutboundSms, Route, SmsRefused, SmsService
from bridges.sms.chat_store import INVITE_OPEN_STATES, ChatStore, Invite
from bridges.sms.numbers import InvalidNumber, PhoneNumber, parse_mobile
from bridges.sms.sender_name import sender_label
from bridges.sms.templating import render
from bridges.wangxin_api import WangxinApi

logger = logging.getLogger(__name__)

SOURCE_LABEL = "an SMS invitation"
# Only when the inviter shares a number with others for that phone; otherwise a reply simply
# reaches the inviter, as in SMS chat.
CODED_REPLY_HINTS = {"en": "To answer them, start your reply with #{code}.", "zh-CN": "回复TA请以#{code}开头。"}
PREVIEW_LIMIT = 10
STATE_WORDS = {
    "queued": "waiting to be texted",
    "sent": "texted",
    "delivered": "delivered",
    "failed": "not sent",
    "joined": "joined",
    "revoked": "withdrawn",
}


class SmsInvites:
    def __init__(self, config: BridgeConfig, store: ChatStore, imports: ImportStore, sms: SmsService,
                 client: MatrixClient, wangxin: WangxinApi):
        self.config = config
        self.store = store
        self.imports = imports
        self.sms = sms
        self.client = client
        self.wangxin = wangxin
        self.region = config.sms.default_region
        a = config.appservice
        # Operators put the bridge's /_wangxin/v1/invite/ behind their reverse proxy and set
        # sms.invite_base_url to its public address; without it the link is the bridge's own.
        self.base_url = (config.sms.invite_base_url or f"http://{a.bind_address}:{a.port}/_wangxin/v1/invite").rstrip("/")
        self._key = hashlib.sha256(b"wangxin-sms-invite\x00" + config.appservice.as_token.encode()).digest()
        sms.add_status_listener("invite", self.on_status)

    def install(self, router: Router) -> None:
        router.add("GET", r"/_wangxin/v1/invite/(?P<token>[A-Za-z0-9_\-]+)", self._get_page)

    # -- links -------------------------------------------------------------------------------

    def token(self, invite_id: int) -> str:
        mac = hmac.new(self._key, str(invite_id).encode(), hashlib.sha256).digest()[:9]
        return f"{invite_id}-{base64.urlsafe_b64encode(mac).decode().rstrip('=')}"

    def invite_id_of(self, token: str) -> int | None:
        number, _, _ = token.partition("-")
        if not number.isdigit() or len(number) > 18:
            return None
        return int(number) if hmac.compare_digest(self.token(int(number)), token) else None

    def link(self, invite_id: int) -> str:
        return f"{self.base_url}/{self.token(invite_id)}"

    # -- commands ----------------------------------------------------------------------------

    async def preview(self, user_id: str) -> str:
        waiting = await self._uninvited_contacts(user_id)
        if not waiting:
            return ("None of your imported contacts is waiting for an invitation. "
                    "Send “invite-sms <phone number>” to invite anyone by SMS.")
        shown = ", ".join(f"{c.name} ({_pretty(c.phone)})" for c in waiting[:PREVIEW_LIMIT])
        more = f" and {len(waiting) - PREVIEW_LIMIT} more" if len(waiting) > PREVIEW_LIMIT else ""
        return (f"{len(waiting)} of your imported contacts are not on Wangxin yet: {shown}{more}. "
                "Send “invite-sms all” to text each of them a personal invitation link, or "
                "“invite-sms <number or name> …” for some of them. When they sign up with that number, "
                "they're connected with you and your groups.")

    async def invite(self, user_id: str, targets: list[str], command_event_id: str) -> str:
        if not targets:
            return await self.preview(user_id)
        chosen: list[tuple[PhoneNumber | str, str]]
        if [t.lower() for t in targets] == ["all"]:
            chosen = [(c.phone, c.name) for c in await self._uninvited_contacts(user_id)]
            if not chosen:
                return await self.preview(user_id)
            problems: list[str] = []
        else:
            chosen, problems = await self._resolve(user_id, targets)
        inviter_name = await self.client.name_of(user_id)  # sender_label makes it safe per SMS
        invited: list[str] = []
        already: list[str] = []
        for phone, name in chosen:
            outcome = await self._invite_one(user_id, inviter_name, phone, name, command_event_id)
            if outcome is None:
                invited.append(f"{name} ({_pretty(phone)})" if name != _pretty(phone) else name)
            elif outcome.startswith("already"):
                already.append(f"{name}: {outcome}")
            else:
                problems.append(f"{name}: {outcome}")
        lines = []
        if invited:
            lines.append(f"Invited {len(invited)} by SMS: {', '.join(invited)}.")
        if already:
            lines.append("Not texted again: " + "; ".join(already) + ".")
        if problems:
            lines.append("Not invited: " + "; ".join(problems))
        if invited:
            lines.append("Send “invites” to see how they're doing.")
        return " ".join(lines) or "Nobody to invite."

    async def _invite_one(self, user_id: str, inviter_name: str, phone: PhoneNumber | str, name: str,
                          command_event_id: str) -> str | None:
        """None when texted; otherwise why not, in a few words."""
        number = phone if isinstance(phone, PhoneNumber) else _parse(phone, self.region)
        if number is None:
            return "not a mobile number"
        invite, created = await self.store.create_invite(user_id, number.e164, name)
        if not created:
            if invite.state in INVITE_OPEN_STATES:
                return f"already invited on {_date(invite.created_ts)}"
            if invite.state == "joined":
                return "already joined Wangxin"
        await self._mark_invited(user_id, number, True)
        label = sender_label(inviter_name, user_id, number.language)
        link = self.link(invite.invite_id)

        def body(route: Route) -> str:
            hint = "" if route.reply_code is None else CODED_REPLY_HINTS.get(
                number.language, CODED_REPLY_HINTS["en"]).format(code=route.reply_code)
            return render("invite", number.language, inviter_name=label, link=link, reply_hint=hint,
                          join_url=self.config.sms_join_url)

        try:
            # A reply to an invitation reaches the inviter (a chat with the number opens), nobody else.
            queued = await self.sms.send(to=number, body=body, kind="invite", sender=user_id, reply_to=user_id,
                                         dedup_key=f"invite:{invite.invite_id}:{command_event_id}")
        except SmsRefused as e:
            await self.store.update_invite(invite.invite_id, "failed", error=str(e))
            await self._mark_invited(user_id, number, False)
            return str(e).rstrip(".")
        await self.store.update_invite(invite.invite_id, "queued", sms_id=queued.sms_id)
        return None

    async def status(self, user_id: str) -> str:
        invites = await self.store.invites_of(user_id)
        if not invites:
            return "You haven't invited anyone by SMS yet. Send “invite-sms” to see who you could invite."
        lines = [f"Your SMS invitations ({len(invites)}):"]
        for i in invites:
            state = STATE_WORDS.get(i.state, i.state)
            extra = f" ({i.error})" if i.state == "failed" and i.error else ""
            joined = f" as {i.joined_user_id}" if i.state == "joined" and i.joined_user_id else ""
            lines.append(f"• {i.name} {_pretty(i.phone)}: {state}{joined}{extra}, {_date(i.created_ts)}")
        return "\n".join(lines)

    async def revoke(self, user_id: str, targets: list[str]) -> str:
        if not targets:
            return "Send “invite-sms revoke <number or name>”, or “invite-sms revoke all”."
        invites = [i for i in await self.store.invites_of(user_id) if i.state in INVITE_OPEN_STATES + ("failed",)]
        if [t.lower() for t in targets] == ["all"]:
            chosen = invites
            problems: list[str] = []
        else:
            chosen, problems = [], []
            for target in targets:
                matches = _match(invites, target, self.region)
                if len(matches) == 1:
                    chosen.append(matches[0])
                else:
                    problems.append(f"“{target}” matches {'no open invitation' if not matches else 'several'}")
        for i in chosen:
            await self.store.update_invite(i.invite_id, "revoked")
            if await self._is_sms_only(user_id, i.phone):
                await self.imports.remove_invitable(user_id, i.phone)
            await self._mark_invited(user_id, PhoneNumber(i.phone, ""), False)
        text = f"Withdrew {len(chosen)} invitation{'s' if len(chosen) != 1 else ''}"
        text += f": {', '.join(i.name for i in chosen)}." if chosen else "."
        if problems:
            text += " " + "; ".join(problems) + "."
        if chosen:
            text += " Their links no longer work."
        return text

    # -- events --------------------------------------------------------------------------------

    async def on_status(self, sms: OutboundSms) -> None:
        invite = await self.store.invite_by_sms(sms.sms_id)
        if invite is None or invite.state in ("joined", "revoked"):
            return
        state = {"sent": "sent", "delivered": "delivered", "undelivered": "failed", "failed": "failed"}.get(sms.state)
        if state is None or (invite.state == "delivered" and state == "sent"):
            return
        await self.store.update_invite(invite.invite_id, state,
                                       error=sms.error if state == "failed" else None)

    async def on_arrival(self, user_id: str, phone: str) -> None:
        """``phone`` was bound to ``user_id``: the open invitations of that number are joined."""
        for invite in await self.store.open_invites_for_phone(phone):
            if invite.inviter != user_id:
                await self.store.update_invite(invite.invite_id, "joined", joined_user_id=user_id)

    # -- the link's page -------------------------------------------------------------------

    async def _get_page(self, request: Any, token: str) -> tuple[int, Any]:
        invite_id = self.invite_id_of(token)
        invite = await self.store.invite(invite_id) if invite_id is not None else None
        request.setHeader(b"Content-Type", b"text/html; charset=utf-8")
        request.setHeader(b"Cache-Control", b"no-store")
        if invite is None:
            return 404, _page("邀请链接无效 · Invitation not found",
                              "这个邀请链接不正确。This invitation link is not valid.", None)
        if invite.state == "revoked":
            return 410, _page("邀请已撤回 · Invitation withdrawn",
                              "邀请人已撤回这个邀请。The person who invited you withdrew this invitation.",
                              self.config.sms_join_url)
        # The page is what the SMS links to: the inviter is named as in the SMS.
        parsed = _parse(invite.phone, self.region)
        name = sender_label(await self.client.name_of(invite.inviter), invite.inviter,
                            parsed.language if parsed else "en")
        number = _pretty(invite.phone)
        if invite.state == "joined":
            text = (f"{name} 的邀请已被接受。This invitation from {name} has been accepted: "
                    "sign in to chat.")
        else:
            text = (f"{name} 邀请你加入旺信。用手机号 {number} 注册，就会自动和 TA 以及你们的群连上。"
                    f" {name} invited you to Wangxin. Sign up with your number {number} and you'll be "
                    "connected with them and your groups automatically.")
        return 200, _page(f"{name} 邀请你加入旺信 · Join {name} on Wangxin", text, self.config.sms_join_url)

    # -- helpers ---------------------------------------------------------------------------------

    async def _uninvited_contacts(self, user_id: str) -> list[Invitable]:
        invited = {i.phone for i in await self.store.invites_of(user_id)}
        return [c for c in await self.imports.invitable_of(user_id)
                if c.phone not in invited and c.source_label != SOURCE_LABEL]

    async def _resolve(self, user_id: str, targets: list[str]) -> tuple[list[tuple[PhoneNumber | str, str]],
                                                                         list[str]]:
        contacts = await self.imports.invitable_of(user_id)
        chosen: list[tuple[PhoneNumber | str, str]] = []
        problems: list[str] = []
        for target in targets:
            try:
                number = parse_mobile(target, self.region)
            except InvalidNumber as e:
                named = [c for c in contacts if target.lower() in c.name.lower()]
                if len(named) == 1:
                    chosen.append((named[0].phone, named[0].name))
                elif len(named) > 1:
                    problems.append(f"“{target}” matches {len(named)} contacts ("
                                    + ", ".join(c.name for c in named[:5]) + "): use the number")
                elif any(ch.isdigit() for ch in target):
                    problems.append(str(e).rstrip("."))
                else:
                    problems.append(f"no contact from your imports is called “{target}”")
                continue
            known = next((c for c in contacts if c.phone == number.e164), None)
            chosen.append((number, known.name if known else number.pretty))
            if known is None:
                # Signing up with the number opens the DM with the inviter (contact import's arrival hook).
                await self.imports.add_invitable(0, [Invitable(user_id, number.e164, number.pretty, SOURCE_LABEL)])
        return chosen, problems

    async def _is_sms_only(self, user_id: str, phone: str) -> bool:
        contacts = await self.imports.invitable_of(user_id)
        return any(c.phone == phone and c.source_label == SOURCE_LABEL for c in contacts)

    async def _mark_invited(self, user_id: str, number: PhoneNumber, invited: bool) -> None:
        """Tell the module, so that this number's sign-up reaches the bridge for this inviter."""
        try:
            await self.wangxin.call("POST", "/import/invited", user_id, {"msisdn": number.digits, "invited": invited})
        except MatrixRequestError as e:
            logger.warning("Could not record the invitation of %s by %s with the homeserver: %s",
                           number.e164, user_id, e)



def _parse(phone: str, region: str) -> PhoneNumber | None:
    try:
        return parse_mobile(phone, region)
    except InvalidNumber:
        return None


def _pretty(phone: PhoneNumber | str) -> str:
    if isinstance(phone, PhoneNumber):
        return phone.pretty
    try:
        return PhoneNumber(phone, "").pretty
    except Exception:
        return phone


def _date(ts_ms: int) -> str:
    return time.strftime("%Y-%m-%d", time.gmtime(ts_ms / 1000))


def _match(invites: list[Invite], target: str, region: str) -> list[Invite]:
    number = _parse(target, region)
    if number is not None:
        return [i for i in invites if i.phone == number.e164]
    return [i for i in invites if target.lower() in i.name.lower()]


def _page(title: str, text: str, join_url: str | None) -> bytes:
    button = (f'<p><a href="{html.escape(join_url)}">加入旺信 · Join Wangxin</a></p>' if join_url else "")
    return (
        "<!DOCTYPE html><html><head><meta charset=\"utf-8\">"
        "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
        f"<title>{html.escape(title)}</title></head>"
        "<body style=\"font-family: sans-serif; max-width: 32em; margin: 2em auto; padding: 0 1em\">"
        f"<h1>{html.escape(title)}</h1><p>{html.escape(text)}</p>{button}</body></html>"
    ).encode()
