"""Opt-out keywords, as carriers and Twilio understand them: the whole message, any case.

A number that texts a STOP word gets no SMS from Wangxin any more (one confirmation excepted)
until it texts a START word. START words from a number that is not opted out are ordinary
replies: people answer "yes" to their friends.
"""

from __future__ import annotations

from typing import Literal

STOP_WORDS = frozenset({"STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT", "TD", "退订"})
START_WORDS = frozenset({"START", "UNSTOP", "YES"})
HELP_WORDS = frozenset({"HELP", "INFO"})

Keyword = Literal["stop", "start", "help"]

# Punctuation a phone may add around a single word ("Stop.", "退订。").
_TRIM = " \t\r\n\u3000.!?。！？"


def keyword_of(body: str) -> Keyword | None:
    word = body.strip(_TRIM).upper()
    if word in STOP_WORDS:
        return "stop"
    if word in START_WORDS:
        return "start"
    if word in HELP_WORDS:
        return "help"
    return None
