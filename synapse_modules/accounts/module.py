"""``Accounts``, the Synapse module: it takes the merchant circle's running parts, makes its own,
registers the registration check and the HTTP resource, and starts the sweep. What each part does
is in its file."""

from __future__ import annotations

from typing import Any

from synapse.module_api import ModuleApi

from synapse_modules import _features
from synapse_modules._config import ModuleConfigError, to_synapse_config_error
from synapse_modules._internals import DirectoryInternals, SynapseInternals
from synapse_modules.accounts.adoption import Adoption
from synapse_modules.accounts.channels import Channels
from synapse_modules.accounts.config import AccountsConfig
from synapse_modules.accounts.followers_desk import add_followers_desk
from synapse_modules.accounts.http import AccountsHttp
from synapse_modules.accounts.identities import Identities
from synapse_modules.accounts.posting_parts import start_posting
from synapse_modules.accounts.store import AccountsStore
from synapse_modules.accounts.storefront import Storefronts
from synapse_modules.merchant_circle.parts import running


class Accounts:
    """Synapse module: ``synapse_modules.accounts.Accounts``, listed after ``MerchantCircle``."""

    def __init__(self, config: AccountsConfig, api: ModuleApi):
        parts = running(api.server_name)
        if parts is None:
            raise RuntimeError(
                "synapse_modules.accounts.Accounts builds on the merchant circle: list "
                "synapse_modules.merchant_circle.MerchantCircle before it under modules:"
            )
        _features.loaded("accounts")
        store = AccountsStore(api, parts.store)
        identities = Identities(api, config, parts.lookups)
        channels = Channels(api, store, parts, identities, DirectoryInternals(api), config.list_verified_in_directory)
        adoption = Adoption(api, config, store, parts.lookups, channels)
        storefronts = Storefronts(store, channels, parts.lookups.owner)
        # A channel's further rooms get the account's state and storefront (docs/accounts.md).
        parts.shards.on_new_shard(channels.on_new_shard)
        parts.shards.on_new_shard(storefronts.on_new_shard)

        identities.register_callbacks()
        # Merchants made by PUT /merchants become accounts as soon as their circle exists.
        parts.circles.on_new_merchant(adoption.on_new_merchant)
        # A follow mutes the channel before the join where push rules can be written (the main
        # process by default); elsewhere the merchant circle's queue mutes it just after.
        mutes_here = SynapseInternals(api).is_push_rules_writer
        resource = AccountsHttp(api, config, store, parts, identities, channels, storefronts, mutes_here).register()
        # Posting as the account, scheduled and targeted posts (docs/accounts.md, "Posting").
        start_posting(api, config, store, parts, identities, resource, adoption.adopt)
        # Auto-reply, support rooms and stats (docs/accounts.md, "Auto-reply and support rooms", "Stats").
        add_followers_desk(api, config, store, parts, identities, resource)
        if api.should_run_background_tasks():
            api.looping_background_call(adoption.sweep, config.sweep_interval_ms, desc="wangxin_accounts_sweep")
            api.run_as_background_process("wangxin_accounts_sweep", adoption.sweep)

    @staticmethod
    def parse_config(config: Any) -> AccountsConfig:
        try:
            return AccountsConfig.from_dict(config)
        except ModuleConfigError as e:
            raise to_synapse_config_error(e) from None
