"""The one place where Wangxin reaches into Synapse internals.

The module API cannot create, move or delete push rules (only edit the actions of an existing
one; see ``docs/synapse.md``, "Push rules" and "The internals adapter"), join or invite without
the client rate limits, or read the tables the features need. Everything in this package calls
private Synapse code and is pinned to the versions it was checked against: on any other version
the adapter refuses to start, and ``tests/unit/test_internals.py`` (which checks every private
name, signature, table and column used here against the installed Synapse and a freshly built
database) fails, so an upgrade cannot silently change behaviour.

One module per concern: ``version`` (the check), ``push_rules``, ``memberships`` (joins, leaves,
the membership delta stream, posts), ``contacts`` (contact import), ``directory`` (room aliases of
existing rooms), ``profiles`` (an account user's avatar), ``log_contexts``. Import the names from this package.
"""

from synapse_modules._internals.contacts import (
    ContactImportInternals,
    room_with_marker_txn,
    user_by_msisdn_txn,
    users_by_msisdn_txn,
)
from synapse_modules._internals.directory import DirectoryInternals
from synapse_modules._internals.log_contexts import keyed_lock, resolve_outside_log_context
from synapse_modules._internals.memberships import (
    MembershipInternals,
    events_position,
    membership_changes_since,
    membership_deltas,
    membership_deltas_txn,
    persisted_event_ids_txn,
    sending_device,
)
from synapse_modules._internals.profiles import ProfileInternals
from synapse_modules._internals.push_rules import (
    PRIORITY_CLASS,
    NewPushRule,
    PushRuleLimitExceeded,
    StoredPushRule,
    SynapseInternals,
    changes_txn,
    list_rules_txn,
    user_rule_ids_txn,
)
from synapse_modules._internals.receipts import event_positions_txn, read_positions_txn
from synapse_modules._internals.version import (
    SUPPORTED_SYNAPSE_SERIES,
    UnsupportedSynapseVersion,
    check_synapse_version,
)

# The transaction functions' names from when this was one file.
_list_rules_txn = list_rules_txn
_changes_txn = changes_txn
_membership_deltas_txn = membership_deltas_txn
_users_by_msisdn_txn = users_by_msisdn_txn
_room_with_marker_txn = room_with_marker_txn

__all__ = [
    "PRIORITY_CLASS",
    "SUPPORTED_SYNAPSE_SERIES",
    "ContactImportInternals",
    "DirectoryInternals",
    "MembershipInternals",
    "NewPushRule",
    "ProfileInternals",
    "PushRuleLimitExceeded",
    "StoredPushRule",
    "SynapseInternals",
    "UnsupportedSynapseVersion",
    "changes_txn",
    "check_synapse_version",
    "event_positions_txn",
    "events_position",
    "keyed_lock",
    "list_rules_txn",
    "membership_changes_since",
    "membership_deltas",
    "membership_deltas_txn",
    "persisted_event_ids_txn",
    "read_positions_txn",
    "resolve_outside_log_context",
    "room_with_marker_txn",
    "sending_device",
    "user_by_msisdn_txn",
    "user_rule_ids_txn",
    "users_by_msisdn_txn",
]
