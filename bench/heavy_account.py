"""Builds the heavy account of ``bench first_screen`` on a running Wangxin stack.

Everything goes through public APIs, without rate limits (the stack runs with
``--relaxed-rate-limits``):

- the members of DMs and groups are the bridge's ghosts (``@wx_…``, registered by the
  application service, which can act as them): they send the history with ``?ts=``, so it is
  spread over six months. The 10-member room, the big group and the merchants are ordinary
  users (admin API), so that no measured send goes to the bridge;
- the circles are real: the admin makes each merchant (``PUT /merchants/{id}``), the viewer
  buys from each (the purchase webhook), and the module follows, mutes and files the circle
  in the viewer's 商家圈 space. The merchants post as the merchant bot does, with the bot's own
  images (``bots.merchant.circle_api.post_image``: a product photo above the QR code of the buy
  link; the photos are synthetic, ``product_photo``), uploaded first;
- history is sent in time order across all rooms, then the viewer's read markers.
"""

from __future__ import annotations

import functools
import io
import secrets
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any
from urllib.parse import quote

import attrs
import requests

from bench.first_screen_plan import (
    ELEMENT_WEB_FILTER,
    Message,
    RoomPlan,
    Sizes,
    encrypted_content,
    history_schedule,
    message_text,
    plan_rooms,
    read_marker_index,
)
from bench.progress import Progress, together

API = "/_synapse/client/wangxin/v1"
CLIENT = "/_matrix/client/v3"


def q(value: str) -> str:
    return quote(value, safe="")


class Http:
    """One access token over pooled, kept-alive connections (safe across threads)."""

    def __init__(self, base: str, token: str, pool: int = 16):
        self.base = base.rstrip("/")
        self.session = requests.Session()
        self.session.headers["Authorization"] = f"Bearer {token}"
        adapter = requests.adapters.HTTPAdapter(pool_connections=pool, pool_maxsize=pool)
        self.session.mount("http://", adapter)

    def call(self, method: str, path: str, body: Any = None, params: dict[str, Any] | None = None,
             data: bytes | None = None, headers: dict[str, str] | None = None) -> Any:
        r = self.session.request(method, self.base + path, json=body if data is None else None, data=data,
                                 params=params, headers=headers, timeout=600)
        if not 200 <= r.status_code < 300:
            raise RuntimeError(f"{method} {path} -> {r.status_code}: {r.text[:500]}")
        return r.json() if r.content else {}


@attrs.define
class Account:
    """What the measurements need from the build."""

    viewer_id: str
    viewer_token: str
    rooms: dict[str, str]  # RoomPlan.key -> room id
    small_speakers: list[str]  # access tokens of members of the 10-member room
    circles: list[str]  # circle room ids
    space_id: str | None
    filter_id: str = ""  # Element Web's uploaded filter, the same id on a copy of the database
    build_s: dict[str, float] = attrs.Factory(dict)
    counts: dict[str, int] = attrs.Factory(dict)


def _pool(fn: Callable[[Any], Any], items: list[Any], concurrency: int, progress: Progress | None = None,
          side: str = "") -> list[Any]:
    def one(item: Any) -> Any:
        out = fn(item)
        if progress:
            progress.tick(side)
        return out

    with ThreadPoolExecutor(max(1, concurrency)) as pool:
        return list(pool.map(one, items))


def _phase(label: str, totals: dict[str, int]) -> Progress:
    print(f"[first_screen] building: {label}", file=sys.stderr, flush=True)
    return Progress(f"build {label}", totals)


class Builder:
    def __init__(self, stack: Any, sizes: Sizes, concurrency: int = 6):
        self.stack, self.sizes, self.concurrency = stack, sizes, concurrency
        self.url = stack.url
        self.server = stack.server_name
        self.admin = Http(self.url, stack.info["admin"]["access_token"], pool=32)
        self.appservice = Http(self.url, stack.info["bridge"]["as_token"], pool=32)
        self.platform = Http(self.url, stack.info["merchant_circle"]["platform_secret"])
        self.plans = plan_rooms(sizes)
        self.plan_by_key = {p.key: p for p in self.plans}
        self._clients: dict[str, Http] = {}
        self.tag = secrets.token_hex(2)
        self.room_ids: dict[str, str] = {}
        self.events: dict[str, list[str]] = {}
        self._lock = threading.Lock()
        self.timings: dict[str, float] = {}
        self.progress: Progress | None = None  # the rooms phase's, for its joins

    # -- users ------------------------------------------------------------------------------

    def _ghost(self, i: int) -> str:
        return f"@wx_fs{self.tag}_{i}:{self.server}"

    def _regular(self, role: str, i: int) -> str:
        return f"@fs{self.tag}_{role}{i}:{self.server}"

    def _make_ghost(self, i: int) -> None:
        user_id = self._ghost(i)
        self.appservice.call("POST", f"{CLIENT}/register", {"type": "m.login.application_service",
                                                           "username": user_id[1:].split(":")[0],
                                                           "inhibit_login": True})
        # Names before any room: a later profile change would send a member event to every room.
        self.appservice.call("PUT", f"{CLIENT}/profile/{q(user_id)}/displayname", {"displayname": f"联系人 {i}"},
                             params={"user_id": user_id})

    def _make_regular(self, user_id: str) -> None:
        self.admin.call("PUT", f"/_synapse/admin/v2/users/{q(user_id)}",
                        {"displayname": user_id[1:].split(":")[0]})

    def _client(self, token: str) -> Http:
        with self._lock:
            if token not in self._clients:
                self._clients[token] = Http(self.url, token)
            return self._clients[token]

    def _login(self, user_id: str) -> str:
        return str(self.admin.call("POST", f"/_synapse/admin/v1/users/{q(user_id)}/login", {})["access_token"])

    # -- build ------------------------------------------------------------------------------

    def build(self) -> Account:
        started = time.monotonic()
        s = self.sizes
        viewer = self.stack.register_user(f"heavy{self.tag}")
        self.viewer_id = viewer["user_id"]
        self.viewer = Http(self.url, viewer["access_token"], pool=32)
        self.viewer.call("PUT", f"{CLIENT}/profile/{q(self.viewer_id)}/displayname", {"displayname": "重度用户"})

        ghosts = max(s.dms, s.largest_group - 1)
        small_members = [self._regular("small", i) for i in range(s.small_room - 1)]
        big_members = [self._regular("big", i) for i in range(s.big_group - 1)]
        merchants = [self._regular("shop", i) for i in range(s.circles)]
        regulars = small_members + big_members + merchants
        t = time.monotonic()
        with _phase("users", {"ghosts": ghosts, "users": len(regulars)}) as progress:
            _pool(self._make_ghost, list(range(ghosts)), self.concurrency, progress, "ghosts")
            _pool(self._make_regular, regulars, self.concurrency, progress, "users")
        self.small_tokens = [self._login(u) for u in small_members[:3]]
        self.big_tokens = [self._login(u) for u in big_members[:5]]
        self.merchant_tokens = _pool(self._login, merchants, self.concurrency)
        self.timings["users_s"] = time.monotonic() - t

        t = time.monotonic()
        circle_ids, space_id = self._circles(merchants)
        self.timings["circles_and_follows_s"] = time.monotonic() - t

        self.avatar = self._upload(self.viewer, _avatar_png(), "group.png")
        rooms = [p for p in self.plans if p.kind != "circle"]
        # The big group first: its joins run one after another (one room), beside the rest.
        rooms.sort(key=lambda p: p.kind != "big")
        joins = sum(p.members - 1 for p in rooms)

        def make_rooms() -> None:
            t = time.monotonic()
            with _phase("rooms", {"rooms": len(rooms), "joins": joins}) as progress:
                self.progress = progress
                _pool(lambda p: self._room(p, small_members, big_members), rooms, self.concurrency, progress,
                      "rooms")
            self.timings["rooms_s"] = time.monotonic() - t

        def upload_images() -> list[dict[str, Any]]:
            t = time.monotonic()
            with _phase("product images", {"uploads": s.circles * s.posts}) as progress:
                images = _pool(lambda cp: self._product_image(*cp),
                               [(c, p) for c in range(s.circles) for p in range(s.posts)],
                               self.concurrency, progress, "uploads")
            self.timings["product_images_s"] = time.monotonic() - t
            return images

        # At the same time: the uploads fill the time the big group's joins leave idle.
        t = time.monotonic()
        _, self.images = together(make_rooms, upload_images)
        self.timings["rooms_and_product_images_s"] = time.monotonic() - t

        t = time.monotonic()
        schedule = history_schedule(self.plans, s, int(time.time() * 1000))
        with _phase("history", {"messages": len(schedule)}) as progress:
            _pool(self._send_history, schedule, self.concurrency, progress, "messages")
        self.timings["history_s"] = time.monotonic() - t

        t = time.monotonic()
        self._read_markers()
        direct: dict[str, list[str]] = {}
        for plan in self.plans:
            if plan.kind == "dm":
                direct.setdefault(self._ghost(int(plan.key.split("-")[1])), []).append(self.room_ids[plan.key])
        self.viewer.call("PUT", f"{CLIENT}/user/{q(self.viewer_id)}/account_data/m.direct", direct)
        filter_id = self.viewer.call("POST", f"{CLIENT}/user/{q(self.viewer_id)}/filter",
                                     ELEMENT_WEB_FILTER)["filter_id"]
        self.timings["read_markers_s"] = time.monotonic() - t
        self.timings["total_s"] = time.monotonic() - started
        # Each phase's cost per unit, to predict a bigger build (rooms and images overlap).
        rates = {"users_ms_per_user": self.timings["users_s"] / max(1, ghosts + len(regulars)),
                 "rooms_ms_per_join": self.timings["rooms_s"] / max(1, joins),
                 "big_group_ms_per_join": self.timings["big_room_joins_s"] / max(1, s.big_group - 1),
                 "product_images_ms_per_image": self.timings["product_images_s"] / max(1, len(self.images)),
                 "history_ms_per_message": self.timings["history_s"] / max(1, len(schedule))}
        self.timings.update({k: v * 1000 for k, v in rates.items()})
        return Account(
            viewer_id=self.viewer_id, viewer_token=viewer["access_token"], rooms=dict(self.room_ids),
            small_speakers=self.small_tokens, circles=circle_ids, space_id=space_id, filter_id=str(filter_id),
            build_s={k: round(v, 1) for k, v in self.timings.items()},
            counts={"ghosts": ghosts, "regular_users": len(regulars), "rooms": len(rooms) + len(circle_ids),
                    "joins": joins, "history_messages": len(schedule), "product_images": len(self.images)})

    # -- circles ----------------------------------------------------------------------------

    def _circles(self, merchants: list[str]) -> tuple[list[str], str | None]:
        s = self.sizes
        circles = []
        with _phase("circles", {"circles": s.circles, "purchases": s.circles}) as progress:
            for i, merchant in enumerate(merchants):
                got = self.admin.call("PUT", f"{API}/merchants/{q(merchant)}", {"name": f"茶叶店 {i}"})
                circles.append(got["circle_room_id"])
                self.room_ids[f"circle-{i}"] = got["circle_room_id"]
                progress.tick("circles")

            def buy(i: int) -> None:
                self.platform.call("POST", f"{API}/purchases",
                                   {"order_id": f"fs{self.tag}-{i}", "buyer": self.viewer_id,
                                    "merchant": merchants[i], "items": [{"sku": "tea", "qty": 1}]})
                progress.tick("purchases")

            _pool(buy, list(range(s.circles)), self.concurrency)
        # The follows run in the module's queue: wait until every circle is joined and filed.
        deadline = time.monotonic() + 600
        while True:
            states = [self.admin.call("GET", f"{API}/merchants/{q(m)}") for m in merchants]
            if all(st["followers"] >= 1 and st["follows_queued"] == 0 and st["filings_queued"] == 0
                   for st in states):
                break
            if time.monotonic() > deadline:
                raise RuntimeError(f"the viewer's follows did not finish in 600 s: {states[:3]}")
            time.sleep(1.0)
        mine = self.viewer.call("GET", f"{API}/circle")
        space = mine.get("space_room_id")
        return circles, space if isinstance(space, str) else None

    # -- rooms ------------------------------------------------------------------------------

    def _room(self, plan: RoomPlan, small_members: list[str], big_members: list[str]) -> None:
        body: dict[str, Any] = {"initial_state": []}
        if plan.encrypted:
            body["initial_state"].append({"type": "m.room.encryption", "state_key": "",
                                          "content": {"algorithm": "m.megolm.v1.aes-sha2"}})
        if plan.avatar:
            body["initial_state"].append({"type": "m.room.avatar", "state_key": "", "content": {"url": self.avatar}})
        if plan.name:
            body["name"] = plan.name
        if plan.kind == "dm":
            partner = self._ghost(int(plan.key.split("-")[1]))
            body.update(preset="trusted_private_chat", is_direct=True, invite=[self.viewer_id])
            room_id = self.appservice.call("POST", f"{CLIENT}/createRoom", body, params={"user_id": partner})["room_id"]
        elif plan.kind == "group":
            members = self._group_ghosts(plan)
            body.update(preset="public_chat")
            room_id = self.appservice.call("POST", f"{CLIENT}/createRoom", body,
                                           params={"user_id": members[0]})["room_id"]
            self._joins(members[1:], lambda m: self.appservice.call("POST", f"{CLIENT}/join/{q(room_id)}", {},
                                                                    params={"user_id": m}))
        else:  # the 10-member room and the big group: ordinary users, joined by the admin API
            members = small_members if plan.kind == "small" else big_members
            creator = self._client(self.small_tokens[0] if plan.kind == "small" else self.big_tokens[0])
            body.update(preset="public_chat")
            room_id = creator.call("POST", f"{CLIENT}/createRoom", body)["room_id"]
            t = time.monotonic()
            self._joins(members[1:], lambda m: self.admin.call("POST", f"/_synapse/admin/v1/join/{q(room_id)}",
                                                                {"user_id": m}))
            # Synapse runs the joins into one room one at a time: the big group's bound the phase.
            self.timings[f"{plan.kind}_room_joins_s"] = time.monotonic() - t
        self.viewer.call("POST", f"{CLIENT}/join/{q(room_id)}", {})
        self._joined()
        self.room_ids[plan.key] = room_id

    def _joins(self, members: list[str], join: Callable[[str], Any]) -> None:
        """Synapse takes one membership change into a room at a time; a few requests in flight
        keep it busy while the next is on the wire and authenticated."""
        def one(member: str) -> None:
            join(member)
            self._joined()

        if len(members) < 20:
            for member in members:
                one(member)
        else:
            with ThreadPoolExecutor(3) as pool:
                list(pool.map(one, members))

    def _joined(self) -> None:
        if self.progress:
            self.progress.tick("joins")

    def _group_ghosts(self, plan: RoomPlan) -> list[str]:
        """A group's ghost members: a window of the pool that moves with the group's index."""
        pool = max(self.sizes.dms, self.sizes.largest_group - 1)
        start = int(plan.key.split("-")[1]) * 7
        return [self._ghost((start + k) % pool) for k in range(plan.members - 1)]

    # -- media ------------------------------------------------------------------------------

    def _upload(self, http: Http, image: bytes, filename: str, mimetype: str = "image/png") -> str:
        return str(http.call("POST", "/_matrix/media/v3/upload", data=image, params={"filename": filename},
                             headers={"Content-Type": mimetype})["content_uri"])

    def _product_image(self, circle: int, post: int) -> dict[str, Any]:
        from bots.merchant.circle_api import image_type, post_image  # the bot's own image

        url = f"https://shop.example.com/s{circle}/p{post}?from=wangxin"
        image, width, height = post_image(url, product_photo(post % PHOTOS))
        mimetype, extension = image_type(image)
        mxc = self._upload(self._client(self.merchant_tokens[circle]), image, f"p{circle}-{post}.{extension}",
                           mimetype)
        return {"url": url, "mxc": mxc, "size": len(image), "w": width, "h": height, "mimetype": mimetype,
                "filename": f"s{circle}p{post}.{extension}"}

    # -- history ----------------------------------------------------------------------------

    def _send_history(self, m: Message) -> None:
        plan = self.plan_by_key[m.room]
        room_id = self.room_ids[m.room]
        txn = f"fs{self.tag}-{m.room}-{m.index}"
        event_type = "m.room.message"
        params: dict[str, Any] = {}
        if plan.kind in ("dm", "group"):
            members = [self._ghost(int(plan.key.split("-")[1]))] if plan.kind == "dm" else \
                self._group_ghosts(plan)[:6]
            sender = members[m.index % len(members)]
            http, params = self.appservice, {"user_id": sender, "ts": m.ts}
            content: dict[str, Any] = {"msgtype": "m.text", "body": message_text(m.room, m.index)}
            if plan.encrypted:
                event_type, content = "m.room.encrypted", encrypted_content(m.room, m.index, f"DEV{sender[4:12]}")
        elif plan.kind == "circle":
            circle = int(plan.key.split("-")[1])
            http = self._client(self.merchant_tokens[circle])
            content = _post_content(circle, m.index, self.images[circle * self.sizes.posts + m.index])
        else:
            tokens = self.small_tokens if plan.kind == "small" else self.big_tokens
            http = self._client(tokens[m.index % len(tokens)])
            content = {"msgtype": "m.text", "body": message_text(m.room, m.index)}
        got = http.call("PUT", f"{CLIENT}/rooms/{q(room_id)}/send/{event_type}/{txn}", content, params=params or None)
        count = self.sizes.posts if plan.kind == "circle" else self.sizes.history
        with self._lock:
            self.events.setdefault(m.room, [""] * count)[m.index] = got["event_id"]

    def _read_markers(self) -> None:
        items = []
        for i, plan in enumerate(self.plans):
            events = self.events.get(plan.key, [])
            at = read_marker_index(i, len(events), self.sizes.read_share)
            if at is not None and events:
                items.append((self.room_ids[plan.key], events[at]))
        with _phase("read markers", {"rooms": len(items)}) as progress:
            _pool(lambda item: self.viewer.call("POST", f"{CLIENT}/rooms/{q(item[0])}/read_markers",
                                                {"m.fully_read": item[1], "m.read": item[1]}),
                  items, self.concurrency, progress, "rooms")


def _post_content(circle: int, index: int, image: dict[str, Any]) -> dict[str, Any]:
    """A product post exactly as the merchant bot makes it (bots/merchant: publish)."""
    from bots.merchant.circle_api import caption

    product = {"id": f"s{circle}p{index}", "title": f"明前龙井 {index} 号", "price": f"{88 + index}.00",
               "currency": "CNY", "url": image["url"], "image": image["mxc"]}
    return {"msgtype": "m.image", "body": caption(product), "filename": image["filename"], "url": image["mxc"],
            "info": {"mimetype": image["mimetype"], "size": image["size"], "w": image["w"], "h": image["h"]},
            "org.wangxin.product": product}


PHOTOS = 10  # distinct product photos; the posts take turns


@functools.lru_cache(maxsize=PHOTOS)
def product_photo(seed: int, width: int = 1600, height: int = 1200) -> bytes:
    """A photo-like JPEG as a phone sends it: shapes and colour gradients (placed by ``seed``),
    slightly blurred, with sensor noise."""
    import random

    from PIL import Image, ImageDraw, ImageFilter

    rng = random.Random(seed)
    picture = Image.linear_gradient("L").resize((width, height)).convert("RGB")
    draw = ImageDraw.Draw(picture)
    for _ in range(40):
        x, y, r = rng.randrange(width), rng.randrange(height), rng.randrange(20, 240)
        draw.ellipse((x - r, y - r, x + r, y + r), fill=(rng.randrange(256), rng.randrange(256), rng.randrange(256)))
    picture = Image.blend(picture.filter(ImageFilter.GaussianBlur(3)),
                          Image.effect_noise((width, height), 12).convert("RGB"), 0.15)
    out = io.BytesIO()
    picture.save(out, format="JPEG", quality=90)
    return out.getvalue()


def _avatar_png() -> bytes:
    from PIL import Image

    out = io.BytesIO()
    Image.new("RGB", (256, 256), (40, 160, 90)).save(out, format="PNG")
    return out.getvalue()


def wait_for_bridge(stack: Any, quiet_s: float = 5.0, timeout: float = 900) -> float:
    """Wait until the bridge has handled every event Synapse sent it (its ``/health`` counts
    stay still for ``quiet_s``): the ghosts' rooms send it all their events, and a bridge still
    busy with them would share the machine with the Wangxin side of the measurements."""
    url = stack.info["bridge"]["url"] + "/health"
    started = time.monotonic()
    last, still_since = None, time.monotonic()
    while time.monotonic() - started < timeout:
        got = requests.get(url, timeout=30).json()
        now = (got.get("transactions"), got.get("processed"))
        if now != last:
            last, still_since = now, time.monotonic()
        elif time.monotonic() - still_since >= quiet_s:
            return time.monotonic() - started
        time.sleep(0.5)
    raise RuntimeError(f"the bridge was still busy after {timeout:.0f} s ({url}: {last})")
