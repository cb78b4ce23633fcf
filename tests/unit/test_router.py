from __future__ import annotations

import pytest

from wangxin_stack.router import WorkerRouter


@pytest.mark.parametrize(
    "path, to_worker",
    [
        ("/_matrix/client/v3/sync", True),
        ("/_matrix/client/v3/rooms/!abc/send/m.room.message/t1", True),
        ("/_matrix/client/v3/rooms/!abc/messages", True),
        ("/_matrix/client/v3/rooms/!abc/join", True),
        ("/_matrix/client/v3/createRoom", False),
        ("/_matrix/client/v3/pushrules/global/override/x", False),
        ("/_synapse/admin/v1/register", False),
        ("/_synapse/client/wangxin/v1/info", False),
        ("/_matrix/client/v1/appservice/wangxin/ping", False),
    ],
)
def test_paths_go_where_synapse_documents_them(path: str, to_worker: bool) -> None:
    router = WorkerRouter(main_port=1, worker_port=2)
    assert router.backend_for(path) == (2 if to_worker else 1)
