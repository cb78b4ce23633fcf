"""The Synapse releases the adapter was checked against, and the start-up check."""

from __future__ import annotations

import synapse

# Checked against these Synapse releases (docs/synapse.md, "Upgrading Synapse").
SUPPORTED_SYNAPSE_SERIES = ("1.163.",)


class UnsupportedSynapseVersion(RuntimeError):
    pass


def check_synapse_version(version: str | None = None) -> str:
    if version is None:
        version = synapse.__version__
    if not version.startswith(SUPPORTED_SYNAPSE_SERIES):
        raise UnsupportedSynapseVersion(
            f"Wangxin's Synapse adapter (synapse_modules/_internals) was verified against Synapse "
            f"{', '.join(s + 'x' for s in SUPPORTED_SYNAPSE_SERIES)}, but this is Synapse {version}. "
            "Re-check the push-rule internals it uses against the new version before running it."
        )
    return version
