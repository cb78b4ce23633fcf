"""Contact import's HTTP surface on the bridge's Router.

- ``POST /_wangxin/v1/arrivals``: the ``contact_import`` Synapse module reports users who bound a
  number (bearer ``homeserver.service_secret``);
- ``POST /_wangxin/v1/imports`` and ``GET .../imports/{id}``: the operator CLI
  (``wangxin-bridge import``, bearer ``as_token``) previews or runs an import for a user, and
  follows it.
"""

from __future__ import annotations

import hmac
from typing import Any

from bridges.contact_import.exports import ImportProblem
from bridges.contact_import.plan import msisdn
from bridges.contact_import.service import ContactImporter
from bridges.http import MatrixError, Router, read_json_object


class ImportHttp:
    def __init__(self, importer: ContactImporter) -> None:
        self.importer = importer
        self.config = importer.config
        self.store = importer.store

    def install(self, router: Router) -> None:
        router.add("POST", "/_wangxin/v1/arrivals", self._post_arrivals)
        # The operator CLI (``wangxin-bridge import``), authenticated with the as_token.
        router.add("POST", "/_wangxin/v1/imports", self._post_import)
        router.add("GET", r"/_wangxin/v1/imports/(?P<job_id>[0-9]+)", self._get_import)

    # -- the module's arrivals -----------------------------------------------------------

    async def _post_arrivals(self, request: Any) -> tuple[int, Any]:
        secret = self.config.homeserver.service_secret
        raw = request.getHeader(b"authorization")
        token = raw.decode("utf-8", "replace").removeprefix("Bearer ") if raw else ""
        if not secret or not hmac.compare_digest(token.encode(), secret.encode()):
            raise MatrixError(403, "M_FORBIDDEN", "Only the Wangxin Synapse module may report arrivals")
        body = read_json_object(request)
        arrivals = body.get("arrivals")
        if not isinstance(arrivals, list):
            raise MatrixError(400, "M_BAD_JSON", "'arrivals' must be a list")
        rows: list[tuple[str, str | None, str | None, list[str] | None]] = []
        for a in arrivals:
            if isinstance(a, dict) and isinstance(a.get("user_id"), str) and isinstance(a.get("msisdn"), str):
                by = a.get("invited_by")
                only = [u for u in by if isinstance(u, str)] if isinstance(by, list) else None
                rows.append((a["user_id"], "+" + msisdn(a["msisdn"]), None, only))
        await self.importer.arrivals.add(rows)
        return 200, {}

    # -- operator ------------------------------------------------------------------------

    def _check_operator(self, request: Any) -> None:
        raw = request.getHeader(b"authorization")
        token = raw.decode("utf-8", "replace").removeprefix("Bearer ") if raw else ""
        if not hmac.compare_digest(token.encode(), self.config.appservice.as_token.encode()):
            raise MatrixError(403, "M_FORBIDDEN", "Send the bridge's as_token as a bearer token")

    async def _post_import(self, request: Any) -> tuple[int, Any]:
        self._check_operator(request)

        def arg(name: str) -> str:
            values = request.args.get(name.encode())
            return values[0].decode("utf-8") if values else ""

        user_id, filename = arg("user_id"), arg("filename") or "export"
        if not user_id.startswith("@") or not user_id.endswith(":" + self.config.homeserver.server_name):
            raise MatrixError(400, "M_INVALID_PARAM", "user_id must name a user of this server")
        limit = self.config.imports.max_bytes
        data = request.content.read(limit + 1)
        if len(data) > limit:
            raise MatrixError(413, "M_TOO_LARGE", f"The file is larger than imports.max_bytes={limit}")
        if await self.store.latest_job(user_id, ("running",)):
            raise MatrixError(409, "WX_IMPORT_RUNNING", f"An import for {user_id} is already running")
        try:
            job_id, text, counts = await self.importer.preview_data(user_id, "", filename, data)
        except ImportProblem as e:
            raise MatrixError(400, "WX_BAD_EXPORT", f"{filename}: {e}") from None
        state = "preview"
        if arg("dry_run") not in ("1", "true"):
            await self.store.set_job_state(job_id, "running", expect=("preview",))
            self.importer.start_job(job_id)
            state = "running"
        return 200, {"job_id": job_id, "state": state, "preview": text, "counts": counts}

    async def _get_import(self, request: Any, job_id: str) -> tuple[int, Any]:
        self._check_operator(request)
        job = await self.store.job(int(job_id))
        if job is None:
            raise MatrixError(404, "M_NOT_FOUND", "No such import")
        return 200, {"job_id": job.job_id, "user_id": job.user_id, "state": job.state,
                     "progress": self.importer.progress.get(job.job_id), "counts": job.counts, "error": job.error}
