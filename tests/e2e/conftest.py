"""Fixtures for end-to-end tests: the SD-card image, built once per session and booted under qemu.

Building needs root (mmdebstrap) and the tools ./bootstrap.sh test installs; without them the
tests skip and say which is missing. A failed build is a failure, not a skip.

Building from nothing takes minutes (the arm64 root is set up under emulation), so when a
session has image tests the builds start as soon as the tests are collected, in the background
at the lowest CPU priority, and the image tests run last: the rest of the suite runs meanwhile.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.e2e.vm import MACHINES, ImageBuild, copy_image, missing_tools

ImageFactory = Callable[[str], Path]
CardFactory = Callable[[str], Path]

_builds_key = pytest.StashKey[dict[str, ImageBuild]]()


def _cannot_build(arch: str) -> str | None:
    """Why this machine cannot build the `arch` image, or None."""
    if os.geteuid() != 0:
        return "building the SD-card image needs root (mmdebstrap, chroot)"
    missing = missing_tools(arch)
    if missing:
        return f"image tools missing: {', '.join(missing)} (./bootstrap.sh test)"
    return None


def _start_build(config: pytest.Config, arch: str) -> ImageBuild:
    builds = config.stash.setdefault(_builds_key, {})
    if arch not in builds:
        log_dir = Path(tempfile.mkdtemp(prefix=f"deskphone-image-{arch}-"))
        builds[arch] = ImageBuild(arch, log_dir / "build.log")
    return builds[arch]


@pytest.hookimpl(trylast=True)  # after -k and -m have deselected what will not run
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Image tests last; the images they boot start building now."""
    image_tests = [item for item in items if item.get_closest_marker("e2e")]
    if not image_tests:
        return
    items[:] = [item for item in items if not item.get_closest_marker("e2e")] + image_tests
    if config.option.collectonly:
        return
    wanted = {arch for arch in MACHINES for item in image_tests if arch in item.name}
    for arch in sorted(wanted):
        if _cannot_build(arch) is None:
            _start_build(config, arch)


def pytest_unconfigure(config: pytest.Config) -> None:
    for build in config.stash.get(_builds_key, {}).values():
        build.kill()


@pytest.fixture(scope="session")
def built_image(request: pytest.FixtureRequest) -> ImageFactory:
    """`built_image(arch)` -> the image, built by `make image ARCH=arch` once per session."""
    built: dict[str, Path] = {}

    def build(arch: str) -> Path:
        if arch not in built:
            reason = _cannot_build(arch)
            if reason:
                pytest.skip(reason)
            running = _start_build(request.config, arch)
            built[arch], seconds = running.wait()
            print(f"make image ARCH={arch}: {seconds:.0f} s (log {running.log_path})")
        return built[arch]

    return build


@pytest.fixture
def card(built_image: ImageFactory, tmp_path: Path) -> Iterator[CardFactory]:
    """`card(arch)` -> a disposable copy of the image for one boot; deleted after the test
    (a gigabyte each, sparse)."""
    made: list[Path] = []

    def copy(arch: str) -> Path:
        disk = copy_image(built_image(arch), tmp_path / f"card-{arch}.img")
        made.append(disk)
        return disk

    yield copy
    for disk in made:
        disk.unlink(missing_ok=True)
