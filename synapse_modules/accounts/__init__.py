"""Official accounts (公众号): merchants, organisations and platforms, each with a channel people
find, follow by link or QR code, and see a shop page beside (docs/accounts.md).

Configured in ``modules:`` as ``synapse_modules.accounts.Accounts``, after the merchant circle,
whose parts it builds on: an account's channel is a circle, its followers are the circle's (muted,
filed in the 商家圈 space by the circle's follow queue). The parts, each in its own file:

- ``config``: the options (pure; errors name the key);
- ``rules``: what the API accepts, and the values derived from it (pure);
- ``identities``: the Matrix user an organisation or platform stands as in its channel;
- ``channels``: the channel made by the circle's parts, then published (alias, account state);
- ``adoption``: merchants made without this module become accounts of kind ``merchant``;
- ``storefront``: the shop page pinned as a widget beside the chat;
- ``follow_page``: the follow link's HTML page and QR code;
- ``autoreply``: keywords, the numbered menu and the welcome, and what a message gets (pure);
- ``support``: one support room per (account, follower), answered by the server and by hand;
  ``support_seats``: who sits there besides the follower; ``dm_routing``: a direct chat with an
  account's user goes to the person's support room;
- ``staff_rules`` (pure) and ``staff``: an account's staff, seated in its support rooms;
- ``stats`` (pure) and ``audience``: followers per day, per post, reads; the CSV;
- ``access``: who may do what to an account (for the parts below);
- ``http_support``, ``http_staff``, ``http_stats``: their routes; ``followers_desk`` composes these parts;
- ``http``: the HTTP API; ``store``: all SQL;
- ``module``: :class:`Accounts`, which only composes the parts.
"""

from synapse_modules.accounts.module import Accounts

__all__ = ["Accounts"]
