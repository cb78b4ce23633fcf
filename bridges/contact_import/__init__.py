"""Contact import (通讯录转移): export file -> DM invitations, group rooms and placeholders.

Flow: the user uploads an export to their management room; ``import`` downloads it (the
appservice token on the authenticated media API), parses it (``bridges.importers``), asks the
``contact_import`` Synapse module which numbers belong to discoverable users and answers with
a preview; ``import confirm`` runs it in the background: placeholders for group members not
here yet, a room per group, direct chats from the importer, and the contacts left to invite by
SMS.

Lookups: a file's numbers are checked against what the importer may still look up today
(module ``GET /import/quota``) before any is spent. A file that fits is looked up at the
preview. A bigger one is looked up after ``import confirm``, as far as today's quota goes; the
contacts and groups whose numbers are all looked up are imported (a part), and the job waits
until the quota renews.

Journal: each step checks the import tables first and records itself when done, so a repeated
or overlapping import makes no duplicates and a job interrupted by a crash is resumed at start
from its stored file.

Arrivals: when a discoverable user binds a number, the placeholders with that number are
replaced by them; an id named in someone's own export is only a claim, which the importers
confirm with ``import accept``.

The parts:

- ``service``: the chat-facing operations and the life of a job (``ContactImporter``);
- ``run``: one pass over a job's plan, creating placeholders, rooms and direct chats;
- ``arrivals``: arrivals and placeholder claims, from a durable queue;
- ``http``: the module's arrivals hook and the operator's ``/_wangxin/v1/imports``;
- ``exports``: download, parse, look up; ``plan``: what an export will do (pure);
- ``messages``: what the importer is told; ``rooms``: invitations shared by run and arrivals;
- ``store``: every SQL statement of the import.
"""

from __future__ import annotations

from bridges.contact_import.exports import ImportProblem
from bridges.contact_import.http import ImportHttp
from bridges.contact_import.service import ContactImporter

__all__ = ["ContactImporter", "ImportHttp", "ImportProblem"]
