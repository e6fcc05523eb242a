"""Shared pytest setup: the peers rig's fixtures (kamailio, baresip_factory, tone_wav), and the
`quiet` tests, which have the machine to themselves: background work of the session (the image
builds of tests/e2e) pauses while each runs, and they run after the others, when that work is
past its downloads."""

from collections.abc import Iterator

import pytest

from tests.rig import machine_to_ourselves

pytest_plugins = ["tests.rig.fixtures"]


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    quiet = [item for item in items if item.get_closest_marker("quiet")]
    items[:] = [item for item in items if not item.get_closest_marker("quiet")] + quiet


@pytest.fixture(autouse=True)
def _quiet_machine(request: pytest.FixtureRequest) -> Iterator[None]:
    if request.node.get_closest_marker("quiet") is None:
        yield
        return
    with machine_to_ourselves():
        yield
