"""The carrier registry: what a carrier code means to a person (a name in English and Chinese)
and where the carrier's public tracking page for one parcel is. Pure data, no Synapse import.

A tracking-URL template holds ``{number}`` once, replaced by the tracking number,
percent-encoded. A carrier without a template gets no link. The defaults carry a template only
where the carrier's own web site was found to take the number in the URL; for the others the
operator can add one in the config (``carriers:``), or leave them without a link. A code that
is not in the registry is shown as it was sent, without a link.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from urllib.parse import quote

import attrs

CARRIER_CODE_RE = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,31}$")
NUMBER_PLACEHOLDER = "{number}"
MAX_NAME_CHARS = 64
MAX_TEMPLATE_CHARS = 512


@attrs.frozen
class Carrier:
    code: str
    name: str  # English
    name_zh: str
    tracking_url: str | None = None  # a template holding {number}, or no link

    def link(self, tracking_number: str) -> str | None:
        if self.tracking_url is None:
            return None
        return self.tracking_url.replace(NUMBER_PLACEHOLDER, quote(tracking_number, safe=""))


DEFAULT_CARRIERS: tuple[Carrier, ...] = (
    Carrier("sf", "SF Express", "顺丰速运",
            "https://www.sf-express.com/chn/sc/dynamic_function/waybill/#search/bill-number/{number}"),
    Carrier("zto", "ZTO Express", "中通快递", "https://www.zto.com/express/expressCheck.html?txtBill={number}"),
    # YTO, STO and Yunda: no address of a tracking page that takes the number could be
    # confirmed (sources disagree), so no link rather than a guess.
    Carrier("yto", "YTO Express", "圆通速递"),
    Carrier("sto", "STO Express", "申通快递"),
    Carrier("yunda", "Yunda Express", "韵达快递"),
    Carrier("jd", "JD Logistics", "京东物流", "https://www.jdl.com/orderSearch/?waybillCodes={number}"),
    Carrier("ems", "EMS", "中国邮政 EMS", "https://www.ems.com.cn/queryList?mailNum={number}"),
)


def template_error(template: str) -> str | None:
    """Why ``template`` is not a usable tracking-URL template, or ``None``."""
    if len(template) > MAX_TEMPLATE_CHARS:
        return f"is longer than {MAX_TEMPLATE_CHARS} characters"
    if not template.startswith(("https://", "http://")):
        return "must be an http(s) URL"
    if template.count(NUMBER_PLACEHOLDER) != 1:
        return f"must hold {NUMBER_PLACEHOLDER} exactly once (where the tracking number goes)"
    if any(c.isspace() for c in template):
        return "must not contain spaces"
    return None


@attrs.frozen
class CarrierRegistry:
    carriers: Mapping[str, Carrier]

    @staticmethod
    def with_defaults(overrides: Mapping[str, Carrier | None] | None = None) -> CarrierRegistry:
        """The defaults, each replaced by an entry of ``overrides`` with its code (``None``
        removes a default), plus the other entries."""
        carriers = {c.code: c for c in DEFAULT_CARRIERS}
        for code, carrier in (overrides or {}).items():
            if carrier is None:
                carriers.pop(code, None)
            else:
                carriers[code] = carrier
        return CarrierRegistry(carriers)

    def get(self, code: str) -> Carrier | None:
        return self.carriers.get(code.lower())

    def display(self, code: str) -> tuple[str, str | None]:
        """``(name, Chinese name)`` to show: for an unknown code, the code itself and ``None``."""
        carrier = self.get(code)
        if carrier is None:
            return code, None
        return carrier.name, carrier.name_zh

    def link(self, code: str, tracking_number: str) -> str | None:
        carrier = self.get(code)
        return carrier.link(tracking_number) if carrier is not None else None
