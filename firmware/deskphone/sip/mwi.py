"""Message-summary bodies (RFC 3842) read into a `MessageWaiting` event; pure text work."""

from __future__ import annotations

import re

from deskphone.core.events import MessageWaiting

_WAITING = re.compile(r"^\s*Messages-Waiting\s*:\s*(yes|no)\s*$", re.IGNORECASE | re.MULTILINE)
_VOICE = re.compile(
    r"^\s*Voice-Message\s*:\s*(\d+)\s*/\s*(\d+)(?:\s*\(\s*\d+\s*/\s*\d+\s*\))?\s*$",
    re.IGNORECASE | re.MULTILINE,
)


def message_summary(account: int, message: str) -> MessageWaiting | None:
    """Read the body of a NOTIFY (the whole message may be given; headers are skipped).
    None when there is no Messages-Waiting line: the body is not a message summary."""
    body = message.split("\r\n\r\n", 1)[-1] if "\r\n\r\n" in message else message
    waiting = _WAITING.search(body)
    if waiting is None:
        return None
    counts = _VOICE.search(body)
    new, old = (int(counts.group(1)), int(counts.group(2))) if counts else (0, 0)
    return MessageWaiting(account, waiting.group(1).lower() == "yes", new, old)
