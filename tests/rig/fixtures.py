"""pytest fixtures for the rig: a Kamailio per test, baresips registered with it, tone WAVs,
the machine's stall witness.

Every peer is stopped at teardown, whatever the test did. When a test fails, the tails of the
peers' logs are printed in its teardown section, so a CI failure shows what the peers saw.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from tests.rig.baresip import Baresip
from tests.rig.host import HostWatch
from tests.rig.kamailio import Kamailio
from tests.rig.signals import write_tone_wav

BaresipFactory = Callable[..., Baresip]
ToneWavFactory = Callable[..., Path]


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    """Keep each phase's report on the item so fixtures can tell at teardown if the test failed."""
    report = yield
    setattr(item, f"rig_report_{report.when}", report)
    return report


def _failed(request: pytest.FixtureRequest) -> bool:
    report = getattr(request.node, "rig_report_call", None)
    return report is None or report.failed


@pytest.fixture
def kamailio(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Kamailio]:
    """A started Kamailio (users DEFAULT_USERS, min_expires 2) on a free port; stopped after.
    A test's `@pytest.mark.kamailio(...)` passes its keywords to `Kamailio`."""
    marker = request.node.get_closest_marker("kamailio")
    pbx = Kamailio(tmp_path / "kamailio", **(marker.kwargs if marker else {}))
    pbx.start()
    try:
        yield pbx
    finally:
        pbx.stop()
        if _failed(request):
            print(f"---- {pbx.log_path} (tail)\n{pbx.log_tail(60)}")


@pytest.fixture
def baresip_factory(
    kamailio: Kamailio, tmp_path: Path, request: pytest.FixtureRequest
) -> Iterator[BaresipFactory]:
    """Call `factory(user, password=None, *, start=True, wait_registered=None, **kwargs)` to get a
    started Baresip registered with `kamailio` (password defaults to the user's real one; kwargs
    go to Baresip). All of them are stopped at teardown, before Kamailio."""
    made: list[Baresip] = []

    def factory(
        user: str,
        password: str | None = None,
        *,
        start: bool = True,
        wait_registered: bool | None = None,
        **kwargs: Any,
    ) -> Baresip:
        ua = Baresip(
            tmp_path,
            user,
            kamailio.users.get(user, "") if password is None else password,
            kamailio,
            **kwargs,
        )
        made.append(ua)
        if start:
            ua.start(wait_registered=wait_registered)
        return ua

    try:
        yield factory
    finally:
        for ua in made:
            ua.stop()
        if _failed(request):
            for ua in made:
                print(f"---- {ua.log_path} (tail)\n{ua.log_text()[-4000:]}")


@pytest.fixture
def tone_wav(tmp_path: Path) -> ToneWavFactory:
    """Call `tone_wav(freqs, seconds=30.0, rate=16000, amplitude=0.3)` for a 16-bit mono WAV in
    the test's tmp dir (long by default: baresip's aufile does not loop)."""
    counter = iter(range(1_000_000))

    def factory(
        freqs: float | Sequence[float],
        seconds: float = 30.0,
        rate: int = 16000,
        amplitude: float = 0.3,
    ) -> Path:
        names = "-".join(str(f) for f in ([freqs] if isinstance(freqs, int | float) else freqs))
        path = tmp_path / f"tone-{names or 'silence'}-{next(counter)}.wav"
        return write_tone_wav(path, freqs, seconds, rate=rate, amplitude=amplitude)

    return factory


@pytest.fixture(scope="session")
def host_watch() -> Iterator[HostWatch]:
    """The machine's stall witness (tests/rig/host.py), for the session's audio tests."""
    watch = HostWatch().start()
    try:
        yield watch
    finally:
        watch.stop()
