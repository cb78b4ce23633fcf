"""Discovery's HTTP API, under ``/_synapse/client/wangxin/v1/discovery`` (docs/discovery.md).

Every call acts for the owner of the access token (or, with the modules' service secret, for
``?user_id=``: the discovery bot acting for the sender of a chat command). ``GET /reports`` and
``POST /reports/{id}/resolve`` need a server admin's own token. Each handler checks all its
input (``rules``) before it writes anything, so a refused request changes nothing.

Privacy: a position is turned into its cell here and goes no further; no message names a
coordinate. Nothing tells a caller anything about someone who is not in discovery for them:
saying hi to them, or answering a request of theirs, is "not found" exactly as for an id that
does not exist, and blocking or reporting anyone answers the same whoever they are.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from typing import Any, NoReturn, TypeVar

from synapse.module_api import ModuleApi, SynapseRequest, errors

from synapse_modules._http import RoutedJsonResource, acting_user, bearer_matches, parse_json_object
from synapse_modules.discovery.cells import cell_of, cell_size_km, region_of
from synapse_modules.discovery.config import DiscoveryConfig
from synapse_modules.discovery.directory import Directory
from synapse_modules.discovery.pairings import Pairings
from synapse_modules.discovery.rendezvous import Rendezvous, new_id
from synapse_modules.discovery.rules import (
    ID_RE,
    MAX_REASON_CHARS,
    check_id,
    conflict,
    forbidden,
    invalid,
    limit_exceeded,
    not_found,
    only_fields,
    parse_angle,
    parse_language,
    parse_location,
    parse_profile,
    parse_resolve_action,
    parse_text,
    parse_user_id,
)
from synapse_modules.discovery.store import DiscoveryStore
from synapse_modules.discovery.store.bottles import claim_bottle_txn, pick_candidates_txn, reply_txn, throw_txn
from synapse_modules.discovery.store.coupons import PersonCoupon, coupon_changes_txn, own_coupons_txn
from synapse_modules.discovery.store.limits import Limited, take_rate_txn
from synapse_modules.discovery.store.people import (
    Me,
    Profile,
    block_txn,
    delete_location_txn,
    forget_person_txn,
    me_txn,
    nearby_txn,
    opt_out_txn,
    put_profile_txn,
    set_location_txn,
)
from synapse_modules.discovery.store.reports import Report, report_txn, reports_txn, resolve_txn
from synapse_modules.discovery.store.requests import Change, HiOutcome, changes_txn, hi_txn, open_requests_txn
from synapse_modules.discovery.store.video import join_video_txn, leave_video_txn, video_state_txn

PREFIX = "/_synapse/client/wangxin/v1/discovery"
OPT_IN_HINT = f'turn it on with PUT {PREFIX}/profile {{"enabled": true}}'
# Extra people read for GET /nearby, for the few that the merchant check may drop.
NEARBY_SPARE = 10
# The feeds (GET /requests/changes, /coupons/changes) answer every change written so far, but their
# cursor ``next`` never passes changes younger than this: a change is stamped with the time its
# call started, so one still being committed when the feed was read is read by the next call too
# (the bot tells nothing twice), instead of being skipped by a cursor that moved past it.
CHANGES_SETTLE_MS = 2000
CHANGES_MAX_LIMIT = 1000

Response = tuple[int, Any]
C = TypeVar("C")  # what a feed's cursor holds after its time


def _raise(limited: Limited) -> NoReturn:
    raise limit_exceeded(limited.limit, limited.reason, limited.retry_after_ms)


def _profile_json(profile: Profile) -> dict[str, Any]:
    return {"name": profile.name, "gender": profile.gender, "age_range": profile.age_range}


def _report_json(report: Report) -> dict[str, Any]:
    return {"report_id": report.report_id, "reporter": report.reporter, "reported": report.reported,
            "reason": report.reason, "created_ts": report.created_ts, "state": report.state,
            "resolved_by": report.resolved_by, "resolved_ts": report.resolved_ts}


def _change_json(change: Change) -> dict[str, Any]:
    r = change.request
    return {"request_id": r.request_id, "kind": r.kind, "state": r.state, "mutual": r.mutual,
            "sender": r.sender, "sender_name": change.sender_name, "sender_accepted": r.sender_accepted,
            "recipient": r.recipient, "recipient_name": change.recipient_name,
            "recipient_accepted": r.recipient_accepted, "room_id": r.room_id, "created_ts": r.created_ts,
            "updated_ts": r.updated_ts}


def _coupon_json(c: PersonCoupon, *, with_user: bool = False) -> dict[str, Any]:
    found: dict[str, Any] = {"pairing_id": c.pairing_id, **({"user_id": c.user_id} if with_user else {}),
                             "with": c.partner, "state": c.state, "updated_ts": c.updated_ts}
    if c.state == "issued":
        found.update(code=c.code, title=c.title, **({"expires_at": c.expires_at} if c.expires_at else {}))
    if c.reason:
        found["reason"] = c.reason
    return found


def _int_arg(values: list[bytes] | None, name: str, default: int) -> int:
    if not values:
        return default
    text = values[0].decode("utf-8", "replace")
    if not text.isascii() or not text.isdigit() or len(text) > 15:
        raise invalid(f"'{name}' must be a whole number")
    return int(text)


def _coupon_cursor(values: list[bytes] | None, default_ts: int) -> tuple[int, tuple[str, ...]]:
    """``since`` of the coupons' feed: ``<updated_ts>.<pairing id>:<user id>``, or ``<ts>.``."""
    if not values:
        return default_ts, ()
    ts, _, after = values[0].decode("utf-8", "replace").partition(".")
    pairing, _, user_id = after.partition(":")
    if (not ts.isascii() or not ts.isdigit() or len(ts) > 15
            or (after and (not ID_RE.match(pairing) or not user_id.startswith("@")))):
        raise invalid("'since' must be the 'next' of an earlier answer")
    return int(ts), (pairing, user_id) if after else ()


def _next_cursor(since_ts: int, now: int, full: bool, last_ts: int | None, last_key: str | None) -> str:
    """A feed's ``next``: after the page's last change if the page was full and that change is
    settled; otherwise where the unsettled changes start (they are read again next time)."""
    settled = now - CHANGES_SETTLE_MS
    if full and last_ts is not None and last_ts <= settled:
        return f"{last_ts}.{last_key}"
    return f"{max(settled + 1, since_ts)}."


def _cursor(values: list[bytes] | None, default_ts: int) -> tuple[int, str]:
    """``since``: the ``next`` of the last answer (``<updated_ts>.<request_id>``); without one, now."""
    if not values:
        return default_ts, ""
    ts, _, after = values[0].decode("utf-8", "replace").partition(".")
    if not ts.isascii() or not ts.isdigit() or len(ts) > 15 or (after and not ID_RE.match(after)):
        raise invalid("'since' must be the 'next' of an earlier answer")
    return int(ts), after


class DiscoveryHttp:
    def __init__(self, api: ModuleApi, config: DiscoveryConfig, store: DiscoveryStore, directory: Directory,
                 shake: Rendezvous, angle: Rendezvous, pairings: Pairings):
        self._api = api
        self._config = config
        self._store = store
        self._directory = directory
        self._shake = shake
        self._angle = angle
        self._pairings = pairings

    def register(self) -> None:
        r = RoutedJsonResource()
        r.route("GET", "/profile", self._get_profile)
        r.route("PUT", "/profile", self._put_profile)
        r.route("PUT", "/location", self._put_location)
        r.route("DELETE", "/location", self._delete_location)
        r.route("GET", "/nearby", self._get_nearby)
        r.route("POST", "/shake", self._shake_once)
        r.route("POST", "/angle", self._angle_once)
        r.route("POST", "/video", self._join_video)
        r.route("GET", "/video", self._video_state)
        r.route("DELETE", "/video", self._leave_video)
        r.route("GET", "/coupons", self._own_coupons)
        r.route("GET", "/coupons/changes", self._coupon_changes)
        r.route("POST", "/bottles", self._throw)
        r.route("POST", "/bottles/pick", self._pick)
        r.route("POST", r"/bottles/(?P<bottle_id>[^/]+)/reply", self._reply)
        r.route("GET", "/requests", self._get_requests)
        r.route("GET", "/requests/changes", self._request_changes)
        r.route("POST", "/requests", self._say_hi)
        r.route("POST", r"/requests/(?P<request_id>[^/]+)/accept", self._accept)
        r.route("POST", r"/requests/(?P<request_id>[^/]+)/decline", self._decline)
        r.route("POST", "/block", self._block)
        r.route("POST", "/report", self._report)
        r.route("GET", "/reports", self._get_reports)
        r.route("POST", r"/reports/(?P<report_id>[^/]+)/resolve", self._resolve)
        self._api.register_web_resource(PREFIX, r)

    # -- who asks ---------------------------------------------------------------------------

    def _now(self) -> int:
        return self._api.get_current_time_msec()

    async def _user(self, request: SynapseRequest) -> str:
        return await acting_user(request, self._api, self._config.service_secret)

    async def _me(self, user_id: str, *, merchant_check: bool = False) -> Me:
        merchants_among = await self._directory.merchants_among_txn() if merchant_check else None
        return await self._store.run(me_txn, user_id, self._now(), self._config.location_ttl_ms, merchants_among)

    async def _in_discovery(self, user_id: str, *, location: bool = False) -> Me:
        """The caller's state, if they may use the pools now; 403 saying why not otherwise."""
        me = await self._me(user_id, merchant_check=True)
        if me.standing == "banned":
            raise forbidden("You may no longer use discovery on this server")
        if me.profile is None:
            raise forbidden(f"Discovery is off for you: {OPT_IN_HINT}")
        if me.standing == "held":
            raise forbidden("Your discovery profile is under review by the server's admins; "
                            "until then you are out of every pool")
        if me.merchant:
            self._directory.remember_merchant(user_id)
            await self._store.run(forget_person_txn, user_id)
            raise forbidden("Shop accounts cannot use discovery: it is for people meeting people")
        if location and me.cell is None:
            raise forbidden(f"Share your location first: PUT {PREFIX}/location "
                            f"(only a cell of about a kilometre is kept, for {self._config.location_ttl_s // 60} min)")
        return me

    def _feed_request(self, request: SynapseRequest, what: str,
                      parse_cursor: Callable[[list[bytes] | None, int], tuple[int, C]]) -> tuple[int, int, C, int]:
        """A feed's call (the discovery bot's, with the service secret): now, the cursor ``since``
        (its time and what follows it), and ``limit``."""
        if not bearer_matches(request, self._config.service_secret):
            raise forbidden(f"Only the discovery bot may read the changes of everyone's {what}")
        now = self._now()
        since_ts, after = parse_cursor(request.args.get(b"since"), now - CHANGES_SETTLE_MS)
        limit = _int_arg(request.args.get(b"limit"), "limit", 200)
        if not 1 <= limit <= CHANGES_MAX_LIMIT:
            raise invalid(f"'limit' must be between 1 and {CHANGES_MAX_LIMIT}")
        return now, since_ts, after, limit

    async def _require_admin(self, request: SynapseRequest) -> str:
        requester = await self._api.get_user_by_req(request)
        user_id = str(requester.user.to_string())
        if not await self._api.is_user_admin(user_id):
            raise errors.SynapseError(403, "You are not a server admin", errors.Codes.FORBIDDEN)
        return user_id

    # -- profile and location ---------------------------------------------------------------

    async def _get_profile(self, request: SynapseRequest) -> Response:
        user_id = await self._user(request)
        me = await self._me(user_id)
        if me.profile is None:
            return 200, {"enabled": False, **({"status": "banned"} if me.standing == "banned" else {})}
        return 200, {
            "enabled": True, **_profile_json(me.profile),
            "status": "under_review" if me.standing == "held" else "active",
            "location": {"shared": me.cell is not None,
                         "expires_ts": me.location_ts + self._config.location_ttl_ms if me.location_ts else None},
        }

    async def _put_profile(self, request: SynapseRequest) -> Response:
        user_id = await self._user(request)
        change = parse_profile(parse_json_object(request))
        now = self._now()
        rate = self._config.rate_limits["profile"]
        if not change.enabled:
            limited = await self._store.run(opt_out_txn, user_id, now, rate)
            if limited:
                _raise(limited)
            return 200, {"enabled": False}
        reason = await self._directory.excluded_reason(user_id)
        if reason:
            raise forbidden(reason)
        result = await self._store.run(put_profile_txn, user_id, change.fields, await self._default_name(user_id),
                                       now, rate)
        if isinstance(result, Limited):
            _raise(result)
        if not isinstance(result, Profile):
            raise forbidden("You may no longer use discovery on this server")
        return 200, {"enabled": True, **_profile_json(result)}

    async def _default_name(self, user_id: str) -> str:
        localpart = user_id[1:].split(":", 1)[0]
        profile = await self._api.get_profile_for_user(localpart)
        return (profile.display_name or localpart)[:64]

    async def _put_location(self, request: SynapseRequest) -> Response:
        user_id = await self._user(request)
        latitude, longitude = parse_location(parse_json_object(request, name_non_finite=True))
        cell = cell_of(latitude, longitude, self._config.cell_precision)
        del latitude, longitude  # the cell is all that is kept
        await self._in_discovery(user_id)
        now = self._now()
        limited = await self._store.run(set_location_txn, user_id, cell, now, self._config.rate_limits["location"])
        if limited:
            _raise(limited)
        height, width = cell_size_km(cell)
        return 200, {"shared": True, "expires_ts": now + self._config.location_ttl_ms,
                     "area_km": {"height": round(height, 1), "width": round(width, 1)}}

    async def _delete_location(self, request: SynapseRequest) -> Response:
        user_id = await self._user(request)
        await self._store.run(delete_location_txn, user_id)
        return 200, {"shared": False}

    # -- nearby and hi ----------------------------------------------------------------------

    async def _get_nearby(self, request: SynapseRequest) -> Response:
        user_id = await self._user(request)
        me = await self._in_discovery(user_id, location=True)
        assert me.cell is not None
        limit = self._config.nearby_limit
        people = await self._store.run(nearby_txn, user_id, me.cell, self._now(), self._config.location_ttl_ms,
                                       limit + NEARBY_SPARE, self._config.rate_limits["nearby"])
        if isinstance(people, Limited):
            _raise(people)
        merchants = await self._directory.merchants_among([p.user_id for p in people], fresh=True)
        for merchant in merchants:
            await self._store.run(forget_person_txn, merchant)
        shown = [p for p in people if p.user_id not in merchants][:limit]
        return 200, {"people": [
            {"user_id": p.user_id, "display_name": p.name, "distance": p.band,
             **({"gender": p.gender} if p.gender else {}), **({"age_range": p.age_range} if p.age_range else {})}
            for p in shown
        ]}

    async def _say_hi(self, request: SynapseRequest) -> Response:
        user_id = await self._user(request)
        body = parse_json_object(request)
        only_fields(body, ("user_id", "text"))
        target = parse_user_id(body)
        text = parse_text(body, "text", self._config.bottle_max_chars, required=False)
        if target == user_id:
            raise invalid("'user_id' is you")
        me = await self._in_discovery(user_id, location=True)
        assert me.cell is not None
        if await self._directory.is_merchant(target):
            raise not_found("No one by that id is near you in discovery")
        outcome = await self._store.run(
            hi_txn, user_id, me.cell, target, text, self._now(), self._config.location_ttl_ms,
            self._config.decline_cooldown_hours * 3600_000, self._config.rate_limits["hi"], new_id(),
        )
        if isinstance(outcome, Limited):
            _raise(outcome)
        assert isinstance(outcome, HiOutcome)
        if outcome.not_found:
            raise not_found("No one by that id is near you in discovery")
        if outcome.existing:
            raise errors.SynapseError(409, "There is already an open request between you",
                                      errors.Codes.UNKNOWN, additional_fields={"request_id": outcome.existing})
        return 200, {"request_id": outcome.request_id}

    # -- shake ------------------------------------------------------------------------------

    async def _shake_once(self, request: SynapseRequest) -> Response:
        user_id = await self._user(request)
        only_fields(parse_json_object(request), ())
        me = await self._in_discovery(user_id)
        region = region_of(me.cell, self._config.region_precision) if me.cell else None
        window = await self._shake.enter(user_id, region)
        if isinstance(window, Limited):
            _raise(window)
        pairing = await self._shake.outcome(window, user_id)
        if pairing is None:
            return 200, {"paired_with": None}
        return 200, {"paired_with": pairing.partner, "request_id": pairing.request_id}

    # -- 你我36.8度 ----------------------------------------------------------------------------

    async def _angle_once(self, request: SynapseRequest) -> Response:
        """Held within the tolerance of the target in the same window as someone else: a mutual
        request with them (never someone blocked, never the same two twice a day). The call
        answers when its window closes, whatever the angle, so that the answer's timing tells
        nothing."""
        user_id = await self._user(request)
        angle = parse_angle(parse_json_object(request, name_non_finite=True))
        await self._in_discovery(user_id)
        if not self._config.angle.matches(angle):
            now = self._now()
            limited = await self._store.run(take_rate_txn, user_id, "angle", now, self._config.rate_limits["angle"])
            if limited:
                _raise(limited)
            window_ms = self._angle.window_ms
            await self._api.sleep((window_ms - now % window_ms) / 1000)
            return 200, {"paired": False, "within_tolerance": False, "target": self._config.angle.target,
                         "tolerance": self._config.angle.tolerance}
        window = await self._angle.enter(user_id, None)
        if isinstance(window, Limited):
            _raise(window)
        pairing = await self._angle.outcome(window, user_id)
        if pairing is None:
            return 200, {"paired": False}
        return 200, {"paired": True, "request_id": pairing.request_id, "paired_with": pairing.partner}

    # -- 面对面 --------------------------------------------------------------------------------

    async def _join_video(self, request: SynapseRequest) -> Response:
        user_id = await self._user(request)
        language = parse_language(parse_json_object(request))
        me = await self._in_discovery(user_id)
        region = region_of(me.cell, self._config.region_precision) if me.cell else None
        outcome = await self._store.run(join_video_txn, user_id, region, language, self._now(),
                                        self._config.video_queue_ttl_s * 1000, self._config.rate_limits["video"],
                                        new_id())
        if isinstance(outcome, Limited):
            _raise(outcome)
        if outcome.partner is None:
            return 200, {"state": "waiting", "expires_ts": outcome.expires_ts}
        return 200, {"state": "paired", "paired_with": outcome.partner, "request_id": outcome.request_id}

    async def _video_state(self, request: SynapseRequest) -> Response:
        user_id = await self._user(request)
        expires = await self._store.run(video_state_txn, user_id, self._now())
        return 200, {"state": "waiting", "expires_ts": expires} if expires else {"state": "none"}

    async def _leave_video(self, request: SynapseRequest) -> Response:
        user_id = await self._user(request)
        await self._store.run(leave_video_txn, user_id)
        return 200, {"state": "left"}

    # -- coupons ----------------------------------------------------------------------------

    async def _own_coupons(self, request: SynapseRequest) -> Response:
        user_id = await self._user(request)
        coupons = await self._store.run(own_coupons_txn, user_id, self._now())
        return 200, {"coupons": [_coupon_json(c) for c in coupons]}

    async def _coupon_changes(self, request: SynapseRequest) -> Response:
        """The feed of changed coupons, for the discovery bot (the service secret only): it tells
        each person of their own, privately."""
        now, since_ts, after, limit = self._feed_request(request, "coupons", _coupon_cursor)
        changes = await self._store.run(coupon_changes_txn, since_ts, after, now, limit)
        last = changes[-1] if changes else None
        next_cursor = _next_cursor(since_ts, now, len(changes) == limit, last.updated_ts if last else None,
                                   f"{last.pairing_id}:{last.user_id}" if last else None)
        return 200, {"changes": [_coupon_json(c, with_user=True) for c in changes], "next": next_cursor}

    # -- bottles ----------------------------------------------------------------------------

    async def _throw(self, request: SynapseRequest) -> Response:
        user_id = await self._user(request)
        body = parse_json_object(request)
        only_fields(body, ("text",))
        text = parse_text(body, "text", self._config.bottle_max_chars)
        assert text is not None
        await self._in_discovery(user_id)
        bottle_id = new_id()
        limited = await self._store.run(throw_txn, user_id, bottle_id, text, secrets.randbits(62), self._now(),
                                        self._config.throws_per_day, self._config.rate_limits["throw"])
        if limited:
            _raise(limited)
        return 200, {"bottle_id": bottle_id}

    async def _pick(self, request: SynapseRequest) -> Response:
        user_id = await self._user(request)
        only_fields(parse_json_object(request), ())
        await self._in_discovery(user_id)
        per_day = self._config.picks_per_day
        candidates = await self._store.run(pick_candidates_txn, user_id, secrets.randbits(62), self._now(), per_day,
                                           self._config.rate_limits["pick"])
        if isinstance(candidates, Limited):
            _raise(candidates)
        merchants = await self._directory.merchants_among([b.thrower for b in candidates], fresh=True)
        for merchant in merchants:
            await self._store.run(forget_person_txn, merchant)
        for bottle in candidates:
            if bottle.thrower in merchants:
                continue
            claimed = await self._store.run(claim_bottle_txn, user_id, bottle.bottle_id, self._now(), per_day)
            if isinstance(claimed, Limited):
                _raise(claimed)
            if claimed:
                return 200, {"bottle_id": bottle.bottle_id, "text": bottle.text, "thrown_ts": bottle.thrown_ts,
                             "from": {"user_id": bottle.thrower, "display_name": bottle.thrower_name}}
        raise not_found("The sea is empty: no bottle for you to pick right now")

    async def _reply(self, request: SynapseRequest, bottle_id: str) -> Response:
        user_id = await self._user(request)
        body = parse_json_object(request)
        only_fields(body, ("text",))
        text = parse_text(body, "text", self._config.bottle_max_chars)
        assert text is not None
        check_id(bottle_id, "bottle")
        await self._in_discovery(user_id)
        outcome = await self._store.run(reply_txn, user_id, bottle_id, text, self._now(), new_id(),
                                        self._config.rate_limits["reply"])
        if isinstance(outcome, Limited):
            _raise(outcome)
        if outcome.not_found:
            raise not_found("No bottle you picked has that id (or its thrower is no longer in discovery)")
        if outcome.replied:
            raise conflict("You have already replied to this bottle")
        return 200, {"request_id": outcome.request_id}

    # -- requests ---------------------------------------------------------------------------

    async def _get_requests(self, request: SynapseRequest) -> Response:
        user_id = await self._user(request)
        await self._in_discovery(user_id)
        rows = await self._store.run(open_requests_txn, user_id, self._now(), self._config.request_ttl_hours * 3600_000)
        found = []
        for r, name in rows:
            other = r.other(user_id)
            direction = "mutual" if r.mutual else ("outgoing" if r.sender == user_id else "incoming")
            entry: dict[str, Any] = {
                "request_id": r.request_id, "kind": r.kind, "direction": direction, "user_id": other,
                "display_name": name, "accepted_by_you": r.accepted_by(user_id),
                "accepted_by_them": r.accepted_by(other), "created_ts": r.created_ts,
            }
            if r.text is not None:
                entry["text"] = r.text
            found.append(entry)
        return 200, {"requests": found}

    async def _request_changes(self, request: SynapseRequest) -> Response:
        """The feed of changed requests, for the discovery bot (the service secret only): it tells
        the people who chat with it about their new requests with one query, whoever they are."""
        now, since_ts, after_id, limit = self._feed_request(request, "requests", _cursor)
        changes = await self._store.run(changes_txn, since_ts, after_id, now, limit)
        last = changes[-1].request if changes else None
        next_cursor = _next_cursor(since_ts, now, len(changes) == limit, last.updated_ts if last else None,
                                   last.request_id if last else None)
        return 200, {"changes": [_change_json(c) for c in changes], "next": next_cursor}

    async def _accept(self, request: SynapseRequest, request_id: str) -> Response:
        return await self._answer(request, request_id, True)

    async def _decline(self, request: SynapseRequest, request_id: str) -> Response:
        return await self._answer(request, request_id, False)

    async def _answer(self, request: SynapseRequest, request_id: str, accept: bool) -> Response:
        user_id = await self._user(request)
        only_fields(parse_json_object(request), ())
        check_id(request_id, "request")
        await self._in_discovery(user_id)
        result = await self._pairings.answer(user_id, request_id, accept)
        if isinstance(result, Limited):
            _raise(result)
        answer, room_id = result.answer, result.room_id
        r = answer.request
        if answer.outcome == "not_found" or r is None:
            raise not_found("No such request")
        if answer.outcome == "forbidden":
            raise forbidden("This request is not yours to answer")
        if answer.outcome == "answered":
            raise conflict(f"This request was already {r.state}")
        if answer.outcome == "accepting":
            raise conflict("This request is being accepted right now")
        other = r.other(user_id)
        if answer.outcome == "declined":
            return 200, {"request_id": request_id, "state": "declined"}
        if answer.outcome == "waiting":
            return 200, {"request_id": request_id, "state": "waiting", "waiting_for": other}
        return 200, {"request_id": request_id, "state": "accepted", "room_id": room_id, "is_direct": True,
                     "user_id": other, "encrypted": self._config.dm_encrypted,
                     **({"coupon": result.coupon} if result.coupon else {})}

    # -- safety -----------------------------------------------------------------------------

    async def _block(self, request: SynapseRequest) -> Response:
        user_id = await self._user(request)
        body = parse_json_object(request)
        only_fields(body, ("user_id",))
        target = parse_user_id(body)
        if target == user_id:
            raise invalid("'user_id' is you")
        limited = await self._store.run(block_txn, user_id, target, self._now(), self._config.rate_limits["block"])
        if limited:
            _raise(limited)
        return 200, {"blocked": target}

    async def _report(self, request: SynapseRequest) -> Response:
        user_id = await self._user(request)
        body = parse_json_object(request)
        only_fields(body, ("user_id", "reason"))
        target = parse_user_id(body)
        reason = parse_text(body, "reason", MAX_REASON_CHARS)
        assert reason is not None
        if target == user_id:
            raise invalid("'user_id' is you")
        report_id = new_id()
        limited = await self._store.run(report_txn, user_id, target, reason, report_id, self._now(),
                                        self._config.rate_limits["report"])
        if limited:
            _raise(limited)
        return 200, {"report_id": report_id, "blocked": target}

    async def _get_reports(self, request: SynapseRequest) -> Response:
        await self._require_admin(request)
        args = request.args.get(b"state")
        state = args[0].decode("utf-8", "replace") if args else "open"
        if state not in ("open", "restored", "banned", "all"):
            raise invalid("'state' must be open, restored, banned or all")
        reports = await self._store.run(reports_txn, None if state == "all" else state, 500)
        return 200, {"reports": [_report_json(r) for r in reports]}

    async def _resolve(self, request: SynapseRequest, report_id: str) -> Response:
        admin = await self._require_admin(request)
        action = parse_resolve_action(parse_json_object(request))
        check_id(report_id, "report")
        resolution = await self._store.run(resolve_txn, report_id, admin, action, self._now())
        if resolution.outcome == "not_found" or resolution.report is None:
            raise not_found("No such report")
        if resolution.outcome == "resolved":
            raise conflict(f"This report was already resolved ({resolution.report.state})")
        return 200, _report_json(resolution.report)
