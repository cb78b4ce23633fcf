"""What an unauthenticated stranger can learn about who is on Wangxin: nothing from a phone number."""

from __future__ import annotations

import random
import secrets

import pytest
import requests

from tests.harness.fake_twilio import FakeTwilio
from tests.harness.http import eventually, q
from tests.harness.stack import RunningStack


def _new_number() -> tuple[str, str]:
    """A fresh mainland mobile number as typed (national) and as Synapse stores it (digits)."""
    national = "136" + "".join(random.choice("0123456789") for _ in range(8))
    return national, "86" + national


def _request_token(stack: RunningStack, kind: str, national: str) -> requests.Response:
    body = {"client_secret": secrets.token_urlsafe(12), "country": "CN", "phone_number": national, "send_attempt": 1}
    return requests.post(f"{stack.url}/_matrix/client/v3/{kind}/msisdn/requestToken", json=body, timeout=60)


@pytest.mark.parametrize("kind", ["register", "account/3pid"])
def test_request_token_does_not_tell_a_registered_number_from_a_new_one(stack: RunningStack, twilio: FakeTwilio,
                                                                         kind: str) -> None:
    taken, taken_digits = _new_number()
    fresh, fresh_digits = _new_number()
    owner = stack.register_user()
    r = requests.put(f"{stack.info['main_process_url']}/_synapse/admin/v2/users/{q(owner['user_id'])}",
                     json={"threepids": [{"medium": "msisdn", "address": taken_digits}]},
                     headers=stack.admin_headers(), timeout=60)
    assert r.status_code == 200, r.text

    bound, new = _request_token(stack, kind, taken), _request_token(stack, kind, fresh)
    # Same status, no error code, a session id either way: a stranger cannot test numbers.
    assert bound.status_code == new.status_code == 200, (bound.text, new.text)
    for answer in (bound.json(), new.json()):
        assert "errcode" not in answer and isinstance(answer["sid"], str) and answer["sid"], answer
    # The new number gets its code; the owner of the registered one is not texted.
    eventually(lambda: twilio.messages_to("+" + fresh_digits), timeout=60)
    assert twilio.messages_to("+" + taken_digits) == []
