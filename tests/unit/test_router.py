from __future__ import annotations

import pytest

from wangxin_stack.router import WorkerRouter, gzip_worth_it

MAIN, WORKER, SYNC, MEDIA = 1, 2, 3, 4


@pytest.mark.parametrize(
    "path, target",
    [
        ("/_matrix/client/v3/sync", SYNC),
        ("/_matrix/client/r0/sync", SYNC),
        ("/_matrix/client/unstable/org.matrix.simplified_msc3575/sync", SYNC),
        ("/_matrix/client/v3/events", SYNC),
        ("/_matrix/client/v3/rooms/!abc/initialSync", SYNC),
        ("/_matrix/client/v1/media/thumbnail/example.org/abcdef", MEDIA),
        ("/_matrix/client/v1/media/download/example.org/abcdef", MEDIA),
        ("/_matrix/client/v1/media/config", MEDIA),
        ("/_matrix/media/v3/upload", MEDIA),
        ("/_matrix/media/v3/download/example.org/abcdef", MEDIA),
        ("/_synapse/admin/v1/media/example.org/abcdef", MEDIA),
        ("/_synapse/admin/v1/users/@a:example.org/media", MEDIA),
        ("/_matrix/client/v3/rooms/!abc/send/m.room.message/t1", WORKER),
        ("/_matrix/client/v3/rooms/!abc/messages", WORKER),
        ("/_matrix/client/v3/rooms/!abc/join", WORKER),
        ("/_matrix/client/v3/createRoom", MAIN),
        ("/_matrix/client/v3/pushrules/global/override/x", MAIN),
        ("/_synapse/admin/v1/register", MAIN),
        ("/_synapse/client/wangxin/v1/info", MAIN),
        ("/_matrix/client/v1/appservice/wangxin/ping", MAIN),
        # Not sync: only the simplified sliding sync's own path.
        ("/_matrix/client/unstable/org.matrix.simplified_msc3575/other", MAIN),
    ],
)
def test_paths_go_where_synapse_documents_them(path: str, target: int) -> None:
    router = WorkerRouter(main_port=MAIN, worker_port=WORKER, sync_port=SYNC, media_port=MEDIA)
    assert router.backend_for(path) == target


def test_without_sync_and_media_workers_the_generic_worker_syncs_and_the_main_process_serves_media() -> None:
    router = WorkerRouter(main_port=MAIN, worker_port=WORKER)
    assert router.backend_for("/_matrix/client/v3/sync") == WORKER
    assert router.backend_for("/_matrix/client/unstable/org.matrix.simplified_msc3575/sync") == WORKER
    assert router.backend_for("/_matrix/client/v1/media/thumbnail/example.org/abcdef") == MAIN


@pytest.mark.parametrize(
    "content_type, content_encoding, compress",
    [
        (b"application/json", None, True),
        (b"application/json; charset=utf-8", None, True),
        (b"Application/JSON", None, True),
        (b"application/json", b"gzip", False),  # compressed already
        (b"image/png", None, False),
        (b"image/jpeg", None, False),
        (b"application/octet-stream", None, False),
        (None, None, False),
    ],
)
def test_only_json_is_gzipped(content_type: bytes | None, content_encoding: bytes | None, compress: bool) -> None:
    assert gzip_worth_it(content_type, content_encoding) == compress
