"""Fixtures for whole-phone tests: the phone in-process, registered to the test's Kamailio."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.harness import PhoneUnderTest, phone_config_text
from tests.rig.kamailio import Kamailio

PHONE_TONE = 1000.0  # what the phone's microphone plays
FAR_TONE = 600.0  # what baresip's microphone plays

PhoneFactory = Callable[..., PhoneUnderTest]


@pytest.fixture
def phone_factory(
    kamailio: Kamailio, tmp_path: Path, tone_wav: Callable[..., Path]
) -> Iterator[PhoneFactory]:
    """`factory(user="1001", password=None, microphone=None, **config)` -> a started phone (its
    microphone a WAV of PHONE_TONE unless `microphone` names one); stopped at teardown
    (before Kamailio, so its un-REGISTER is answered)."""
    made: list[PhoneUnderTest] = []

    def factory(
        user: str = "1001",
        password: str | None = None,
        *,
        start: bool = True,
        microphone: Path | None = None,
        **config: Any,
    ) -> PhoneUnderTest:
        text = phone_config_text(
            kamailio.port,
            user,
            kamailio.users[user] if password is None else password,
            workdir=tmp_path / f"phone-{user}",
            microphone=microphone or tone_wav(PHONE_TONE, seconds=5.0),
            **config,
        )
        phone = PhoneUnderTest(text)
        made.append(phone)
        return phone.start() if start else phone

    try:
        yield factory
    finally:
        for phone in made:
            phone.stop()
