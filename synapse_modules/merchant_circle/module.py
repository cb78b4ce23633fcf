"""``MerchantCircle``, the Synapse module: it makes the parts, hands each what it needs, registers
the callbacks and the HTTP resources, and starts the loops. What each part does is in its file."""

from __future__ import annotations

from typing import Any

from synapse.module_api import ModuleApi

from synapse_modules import _features
from synapse_modules._config import ModuleConfigError, to_synapse_config_error
from synapse_modules._internals import MembershipInternals, SynapseInternals
from synapse_modules.merchant_circle.circles import Circles
from synapse_modules.merchant_circle.config import MerchantCircleConfig
from synapse_modules.merchant_circle.follows import Follows
from synapse_modules.merchant_circle.http import CircleHttp
from synapse_modules.merchant_circle.lookups import CircleLookups
from synapse_modules.merchant_circle.mirrors import SWEEP_INTERVAL_MS, Mirrors
from synapse_modules.merchant_circle.moments import Moments
from synapse_modules.merchant_circle.mutes import Mutes
from synapse_modules.merchant_circle.parts import CircleParts, publish
from synapse_modules.merchant_circle.queue import FollowQueue
from synapse_modules.merchant_circle.shards import Shards
from synapse_modules.merchant_circle.spaces import Spaces
from synapse_modules.merchant_circle.spam_checks import SpamChecks
from synapse_modules.merchant_circle.store import MerchantCircleStore
from synapse_modules.merchant_circle.watcher import MembershipWatcher

CIRCLES_REFRESH_MS = 10_000  # how often every process re-reads the set of circle rooms
FOLLOW_QUEUE_POLL_MS = 1000  # the follow queue's tick (new jobs also wake it at once)


class MerchantCircle:
    """Synapse module: ``synapse_modules.merchant_circle.MerchantCircle``."""

    def __init__(self, config: MerchantCircleConfig, api: ModuleApi):
        _features.loaded("merchant_circle")
        push = SynapseInternals(api)
        members = MembershipInternals(api)
        store = MerchantCircleStore(api)
        lookups = CircleLookups(api, config, store)
        # The follow queue needs push-rule writes, so it runs where both background tasks and
        # push rules live (the main process by default); a deployment that splits them is refused.
        runs_queue = api.should_run_background_tasks()
        if runs_queue and not push.is_push_rules_writer:
            raise RuntimeError(
                "synapse_modules.merchant_circle: the instance that runs background tasks "
                "(run_background_tasks_on) must also be the push-rules writer (stream_writers.push_rules)"
            )
        circles = Circles(api, config, store, lookups, members)
        # A circle past ``shard_size`` followers gets further rooms; posts are mirrored into them.
        shards = Shards(api, config, store, lookups, members, circles)
        mirrors = Mirrors(api, config, store, members, shards, lookups.owner)
        shards.on_new_shard(mirrors.backfill)
        mutes = Mutes(store, lookups, push, shards.open_room)
        queue = FollowQueue(api, config, store, mutes, runs_here=runs_queue)
        follows = Follows(api, store, lookups, members, mutes, queue, shards)
        spaces = Spaces(api, config, store, lookups, members, mutes)
        moments = Moments(api, config, store, lookups, members, queue)
        queue.handle("follow", follows.run)
        queue.handle("file", spaces.file)
        queue.handle("unfile", spaces.unfile_job)
        queue.handle("evict", moments.evict_job)
        watcher = MembershipWatcher(api, config, store, lookups, members, queue)

        SpamChecks(api, config, store, lookups, follows, queue, mirrors).register()
        # Circle rooms are exempt from ``rc_joins_per_room``: bulk follows never make a real
        # user's join fail with 429.
        members.refund_per_room_joins(lookups.is_known_circle)
        CircleHttp(api, config, store, lookups, members, circles, moments, follows, spaces, shards).register()
        # For the modules built on the circle (accounts: an account's channel is a circle).
        publish(CircleParts(api, config, store, lookups, members, mutes, queue, circles, moments, spaces, shards,
                            mirrors))

        # Every process keeps the set of circle rooms warm: the join-limit refund runs inside
        # Synapse's (synchronous) join notification and can only consult memory.
        api.looping_background_call(lookups.refresh_circles, CIRCLES_REFRESH_MS, desc="wangxin_circle_rooms",
                                    run_on_all_instances=True)
        api.run_as_background_process("wangxin_circle_rooms", lookups.refresh_circles)
        if runs_queue:
            api.looping_background_call(queue.process, FOLLOW_QUEUE_POLL_MS, desc="wangxin_circle_follow_queue")
            # Leaves of circles (remembered unfollows) and merchants who got into a moments
            # room by a path no spam check sees (server admins, knocks, upgrades).
            api.looping_background_call(watcher.watch, config.membership_poll_ms, desc="wangxin_circle_memberships")
            api.run_as_background_process("wangxin_circle_bot_moments", moments.evict_bot_once)
            # Fan-outs of posts into a circle's further rooms that a stopped process left.
            api.looping_background_call(mirrors.sweep, SWEEP_INTERVAL_MS, desc="wangxin_circle_fanout_sweep")

    @staticmethod
    def parse_config(config: Any) -> MerchantCircleConfig:
        try:
            return MerchantCircleConfig.from_dict(config)
        except ModuleConfigError as e:
            raise to_synapse_config_error(e) from None
