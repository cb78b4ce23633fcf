"""The delivery loop: scheduled posts sent at their time, and targeted posts served to their
people, by the server, from the database (so a restart loses nothing).

It runs every ``posting.schedule_poll_ms`` on the background-tasks process (the main process by
default; the merchant circle makes sure it is also the push-rules writer, which the targeted
posts' mutes need), one round at a time. Each round:

1. at the first round after a start, posts a stopped process was sending wait again
   (``resume_interrupted_txn``): a post whose event was stored in the instant before the stop
   goes out a second time, none is lost;
2. scheduled posts that are due are claimed one by one (a cancel that came first wins) and sent:
   a channel post as the account's user; a targeted post started (its people fixed, a slot of
   the limit taken). Over the limit, a post waits until the limit allows it (``retry_after_ms``)
   and says so in its ``last_error``; refused for good (the channel is gone, the segment matches
   too many people), it is ``failed``; a passing failure is tried again, five times at most;
3. targeted posts being delivered are served a batch of people at a time, until none is pending.
"""

from __future__ import annotations

import logging
from typing import Any

from synapse.module_api import ModuleApi, errors

from synapse_modules.accounts.config import AccountsConfig
from synapse_modules.accounts.posting import Posting
from synapse_modules.accounts.store import AccountsStore
from synapse_modules.accounts.store.accounts import get_account_txn
from synapse_modules.accounts.store.posts import (
    Post,
    claim_post_txn,
    delivering_posts_txn,
    due_posts_txn,
    fail_post_txn,
    finish_delivery_txn,
    mark_sent_txn,
    pending_recipients_txn,
    reschedule_txn,
    resume_interrupted_txn,
    set_recipients_txn,
)
from synapse_modules.accounts.store.posts_schema import PostsStore
from synapse_modules.accounts.targeting import TargetedPosts

logger = logging.getLogger(__name__)

DUE_BATCH = 20  # scheduled posts claimed per look
PEOPLE_BATCH = 200  # people of a targeted post served per batch (their results written together)
MAX_ATTEMPTS = 5
RETRY_BASE_MS = 30_000


def retry_after_ms(error: errors.SynapseError) -> int | None:
    value: Any = error.error_dict(None).get("retry_after_ms")
    return int(value) if isinstance(value, int) else None


class PostDelivery:
    def __init__(self, api: ModuleApi, config: AccountsConfig, store: AccountsStore, posts: PostsStore,
                 posting: Posting, targeted: TargetedPosts):
        self._api = api
        self._config = config
        self._store = store
        self._posts = posts
        self._posting = posting
        self._targeted = targeted
        self._running = False  # Synapse's looping call starts a round even if the last has not ended
        self._resumed = False

    async def run(self) -> None:
        if self._running:
            return
        self._running = True
        try:
            if not self._resumed:
                resumed = await self._posts.run(resume_interrupted_txn)
                if resumed:
                    logger.warning("%d posts were being sent when Synapse stopped: they go out again", resumed)
                self._resumed = True
            while True:
                await self._send_due()
                if not await self._serve_one_batch():
                    break
        finally:
            self._running = False

    # -- scheduled posts -------------------------------------------------------------------------

    async def _send_due(self) -> None:
        for post in await self._posts.run(due_posts_txn, self._api.get_current_time_msec(), DUE_BATCH):
            if await self._posts.run(claim_post_txn, post.post_id):
                await self._release(post)

    async def _release(self, post: Post) -> None:
        account = await self._store.run(get_account_txn, post.account_id)
        if account is None or account.channel_room_id is None:
            await self._posts.run(fail_post_txn, post.post_id, "the account or its channel is gone")
            return
        now = self._api.get_current_time_msec()
        try:
            if post.segment is None:
                await self._posting.dress(account)
                event_id = await self._posting.send(account, account.channel_room_id, post.body, post.post_id)
                await self._posts.run(mark_sent_txn, post.post_id, event_id, account.channel_room_id,
                                      self._api.get_current_time_msec())
                logger.info("Sent scheduled post %s of %s", post.post_id, post.account_id)
                return
            targeting = await self._targeted.begin(account, post, new=False)
        except errors.SynapseError as e:
            await self._refused(post, e, now)
            return
        except Exception as e:
            await self._retry(post, str(e) or type(e).__name__, now)
            return
        if targeting.too_many:
            await self._posts.run(fail_post_txn, post.post_id, f"the segment matches {targeting.targeted} people, more "
                                  f"than {self._config.posting.segment_max_recipients}")
        elif targeting.limit is not None and targeting.limit.retry_after_ms is not None:
            await self._posts.run(reschedule_txn, post.post_id, now + targeting.limit.retry_after_ms,
                                  f"waiting for the limit: {targeting.limit.reason}")
        else:
            logger.info("Scheduled post %s of %s targets %d people", post.post_id, post.account_id,
                        targeting.targeted)

    async def _refused(self, post: Post, error: errors.SynapseError, now: int) -> None:
        wait = retry_after_ms(error) if error.code == 429 else None
        if wait is not None:
            await self._posts.run(reschedule_txn, post.post_id, now + wait, f"waiting for the limit: {error.msg}")
        elif 400 <= error.code < 500:
            logger.warning("Scheduled post %s of %s refused: %s", post.post_id, post.account_id, error.msg)
            await self._posts.run(fail_post_txn, post.post_id, error.msg)
        else:
            await self._retry(post, error.msg, now)

    async def _retry(self, post: Post, error: str, now: int) -> None:
        attempts = post.attempts + 1  # this one (the claim counted it in the database)
        if attempts >= MAX_ATTEMPTS:
            logger.error("Scheduled post %s of %s failed %d times: %s", post.post_id, post.account_id, attempts, error)
            await self._posts.run(fail_post_txn, post.post_id, error)
        else:
            logger.warning("Scheduled post %s of %s failed (%s); trying again", post.post_id, post.account_id, error)
            await self._posts.run(reschedule_txn, post.post_id, now + RETRY_BASE_MS * 2 ** (attempts - 1), error)

    # -- targeted posts --------------------------------------------------------------------------

    async def _serve_one_batch(self) -> bool:
        """Serve one batch of people of the first targeted post being delivered; whether there was one."""
        for post in await self._posts.run(delivering_posts_txn, 5):
            users = await self._posts.run(pending_recipients_txn, post.post_id, PEOPLE_BATCH)
            if users:
                account = await self._store.run(get_account_txn, post.account_id)
                if account is None:
                    await self._posts.run(set_recipients_txn, post.post_id,
                                          [(u, "failed", None, "the account is gone") for u in users])
                else:
                    served = await self._targeted.serve(account, post, users)
                    await self._posts.run(set_recipients_txn, post.post_id, served)
            if await self._posts.run(finish_delivery_txn, post.post_id, self._api.get_current_time_msec()):
                logger.info("Targeted post %s of %s delivered", post.post_id, post.account_id)
            return True
        return False
