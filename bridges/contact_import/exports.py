"""Reading an export: download it (the appservice token on the authenticated media API), parse
it (``bridges.importers``, in a thread), plan it; and how many of its numbers the importer may
look up today, and who they are (the ``contact_import`` Synapse module)."""

from __future__ import annotations

import treq
from twisted.internet import threads

from bridges.config import BridgeConfig
from bridges.contact_import.plan import ImportPlan, build_plan
from bridges.contact_import.store.jobs import Upload
from bridges.importers import ImportedExport, ImportFormatError, ImportLimits, parse_export
from bridges.importers.limits import human_size
from bridges.matrix_client import MatrixClient, MatrixRequestError, q
from bridges.wangxin_api import WangxinApi

LOOKUP_BATCH = 1000


class ImportProblem(Exception):
    """Something the user must hear about, in one sentence; nothing was imported."""


def _size_limit(limit: int) -> str:
    return (f"the limit imports.max_bytes = {limit} bytes ({human_size(limit)}). Export fewer contacts or chats at a "
            "time, or ask an administrator to raise the limit")


class Exports:
    def __init__(self, config: BridgeConfig, client: MatrixClient, wangxin: WangxinApi) -> None:
        self.config = config
        self.client = client
        self.wangxin = wangxin
        self._limits = ImportLimits(max_bytes=config.imports.max_bytes, max_rows=config.imports.max_rows)

    async def download(self, upload: Upload) -> bytes:
        limit = self.config.imports.max_bytes
        if upload.size is not None and upload.size > limit:
            raise ImportProblem(f"the file is {upload.size} bytes, more than {_size_limit(limit)}.")
        server_and_id = upload.mxc[len("mxc://"):]
        if server_and_id.count("/") != 1:
            raise ImportProblem("its download link is malformed.")
        server, media_id = server_and_id.split("/")
        url = f"{self.client.base_url}/_matrix/client/v1/media/download/{q(server)}/{q(media_id)}"
        try:
            headers: dict[bytes | str, bytes | str] = {"Authorization": f"Bearer {self.config.appservice.as_token}"}
            response = await treq.get(url, headers=headers, timeout=120)
        except Exception as e:
            raise ImportProblem(f"I could not download it ({e}); please send it again.") from e
        if response.code != 200:
            raise ImportProblem(f"I could not download it (the server said {response.code}); please send it again.")
        chunks: list[bytes] = []
        received = [0]

        def collect(chunk: bytes) -> None:
            received[0] += len(chunk)
            if received[0] <= limit:
                chunks.append(chunk)

        await treq.collect(response, collect)
        if received[0] > limit:
            raise ImportProblem(f"the file is larger than {_size_limit(limit)}.")
        return b"".join(chunks)

    async def parse(self, data: bytes, filename: str) -> ImportedExport:
        try:
            return await threads.deferToThread(
                parse_export, data, filename, default_region=self.config.imports.default_region,
                limits=self._limits,
            )
        except ImportFormatError as e:
            raise ImportProblem(str(e)) from None

    async def plan(self, data: bytes, filename: str) -> ImportPlan:
        return build_plan(await self.parse(data, filename), max_phones=self.config.imports.max_phones_per_contact)

    async def quota(self, importer: str) -> dict[str, int]:
        """The importer's phone lookups today (module): lookups_per_day, used_today, remaining_today, resets_in_ms."""
        try:
            answer = await self.wangxin.call("GET", "/import/quota", importer)
        except MatrixRequestError as e:
            raise ImportProblem(f"I could not check how many phone numbers you may look up today ({e.error}).") from e
        return {k: int(answer[k]) for k in ("lookups_per_day", "used_today", "remaining_today", "resets_in_ms")}

    async def lookup(self, importer: str, numbers: list[str]) -> dict[str, str]:
        matches: dict[str, str] = {}
        for start in range(0, len(numbers), LOOKUP_BATCH):
            try:
                answer = await self.wangxin.call(
                    "POST", "/import/lookup", importer, {"msisdns": numbers[start:start + LOOKUP_BATCH]}
                )
            except MatrixRequestError as e:
                if e.status == 429:  # spent by something else since the quota was checked
                    raise ImportProblem(
                        "your phone-number lookups for today ran out while I was checking this file (another "
                        "import used them). Send “import” again and I will offer to import it in parts."
                    ) from e
                raise ImportProblem(f"I could not check who is already here ({e.error}).") from e
            matches.update(answer.get("matches") or {})
        return matches
