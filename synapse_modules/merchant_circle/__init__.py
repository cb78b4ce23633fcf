"""The merchant circle (商家圈): merchants' broadcast feeds, auto-follow, and friends-only moments.

Configured in ``modules:`` as ``synapse_modules.merchant_circle.MerchantCircle``; see
docs/merchant-circle.md. The parts, each in its own file:

- ``config``: the options (pure; errors name the key);
- ``rules`` and ``quota``: what the circle accepts, and the post quota, repost cooldown and edit
  limit decided (pure);
- ``spam_checks``: the spam-checker callbacks that apply them (posts, moments, a chat's follow);
- ``circles``: circle rooms, made by the owner account and completed before they are recorded;
- ``queue``, ``follows``, ``mutes``, ``spaces``, ``moments``: the durable follow queue and its
  jobs (mute and join, file in the follower's space, evict merchants from moments);
- ``watcher``: the membership delta stream (unfollows by leaving, merchants in moments);
- ``http``: the HTTP API; ``lookups``: cached facts about rooms and accounts;
- ``store``: all SQL, by section;
- ``module``: :class:`MerchantCircle`, which only composes the parts.
"""

from synapse_modules.merchant_circle.module import MerchantCircle

__all__ = ["MerchantCircle"]
