"""The SD-card image as an appliance, booted under qemu (TCG) with a Kamailio on this machine:

    python -m bench.image [--arch amd64|arm64] [--runs N] [--idle-minutes M] [--quick]

Figures: building the image (`make image`, with whatever the cache holds); qemu start ->
multi-user.target -> registered (the phone's binding at Kamailio); sectors written to the root
and to the data partition while the registered phone idles for M minutes (default 10; target:
nothing to the root); power button -> the VM off, its un-REGISTER answered. Results go to
bench/results/image.json. Needs root and the tools ./bootstrap.sh test installs.
"""

from __future__ import annotations

import argparse
import re
import tempfile
import time
from pathlib import Path

from bench.common import Figure, figure, markdown_table, write_results
from tests.e2e.vm import (
    MULTI_USER,
    Vm,
    build_image,
    copy_image,
    phone_settings,
    put_on_card,
)
from tests.rig.kamailio import Kamailio

USER = "1001"
SECTOR = 512
PARTITIONS = {"root": "vda2", "data": "vda3"}


def boot_times(vm: Vm, kamailio: Kamailio, timeout: float) -> tuple[float, float]:
    """Seconds from qemu's start to multi-user.target on the console and to the phone's binding
    at Kamailio, each taken when first seen (polled together: either may come first)."""
    seen: dict[str, float] = {}
    deadline = time.monotonic() + timeout
    while len(seen) < 2:
        now = time.monotonic() - vm.started_at
        if "multi_user" not in seen and re.search(MULTI_USER, vm.console()):
            seen["multi_user"] = now
        if "registered" not in seen and kamailio.bindings(USER):
            seen["registered"] = now
        if time.monotonic() > deadline or not vm.running:
            raise RuntimeError(f"boot incomplete ({sorted(seen)} seen):\n{vm.console_tail()}")
        time.sleep(0.2)
    return seen["multi_user"], seen["registered"]


def boot_once(
    image: Path, arch: str, workdir: Path, kamailio: Kamailio, idle_seconds: float
) -> dict[str, float]:
    """One boot from a fresh copy of the image: the times, and bytes written while idle."""
    workdir.mkdir(parents=True)
    disk = copy_image(image, workdir / "card.img")
    put_on_card(disk, phone_settings(kamailio.port, USER, kamailio.users[USER]))
    registers = kamailio.count("REGISTER", USER)
    with Vm(disk, arch, workdir) as vm:
        multi_user, registered = boot_times(vm, kamailio, timeout=900.0)
        vm.wait_agent(120.0)
        before = vm.sectors_written(PARTITIONS.values())
        time.sleep(idle_seconds)
        after = vm.sectors_written(PARTITIONS.values())
        registers = kamailio.count("REGISTER", USER)
        pressed = time.monotonic()
        vm.press_power_button()
        vm.wait_exit(180.0)
        power_off = time.monotonic() - pressed
    if kamailio.bindings(USER) or kamailio.count("REGISTER", USER) <= registers:
        raise RuntimeError("no un-REGISTER at power-off: the binding is still there")
    result = {"multi_user": multi_user, "registered": registered, "power_off": power_off}
    if idle_seconds:
        for name, device in PARTITIONS.items():
            result[f"written_{name}"] = float((after[device] - before[device]) * SECTOR)
    return result


def run(runs: int, workdir: Path, quick: bool, arch: str = "amd64") -> list[Figure]:
    workdir.mkdir(parents=True, exist_ok=True)
    idle = 60.0 if quick else 600.0
    return measure(runs, workdir, arch, idle)


def measure(runs: int, workdir: Path, arch: str, idle_seconds: float) -> list[Figure]:
    image, build_seconds = build_image(arch, workdir / "build.log")
    boots = []
    with Kamailio(workdir / "kamailio", default_expires=300) as kamailio:
        # The idle window is long (ten minutes by default) and its answer the same each time
        # (nothing writes): it is measured on the first boot only, the boot times on every one.
        for n in range(runs):
            idle = idle_seconds if n == 0 else 0.0
            boots.append(boot_once(image, arch, workdir / f"boot-{n}", kamailio, idle))
    minutes = idle_seconds / 60

    def values(key: str) -> list[float]:
        return [boot[key] for boot in boots if key in boot]

    return [
        figure(f"{arch} image: make image", "s", [build_seconds], note="with the cache as found"),
        figure(f"{arch} image: qemu start -> multi-user", "s", values("multi_user")),
        figure(f"{arch} image: qemu start -> registered", "s", values("registered")),
        figure(
            f"{arch} image: written to root in {minutes:g} idle min",
            "bytes",
            values("written_root"),
            limit=0,
        ),
        figure(
            f"{arch} image: written to data in {minutes:g} idle min",
            "bytes",
            values("written_data"),
        ),
        figure(f"{arch} image: power button -> off (un-REGISTERed)", "s", values("power_off")),
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.image", description=__doc__)
    parser.add_argument("--arch", choices=("amd64", "arm64"), default="amd64")
    parser.add_argument("--runs", type=int, default=1, help="boots (default 1)")
    parser.add_argument("--idle-minutes", type=float, default=10.0)
    parser.add_argument("--quick", action="store_true", help="one idle minute")
    args = parser.parse_args(argv)
    idle = 60.0 if args.quick else args.idle_minutes * 60
    with tempfile.TemporaryDirectory(prefix="deskphone-bench-image-") as tmp:
        rows = measure(args.runs, Path(tmp), args.arch, idle)
    path = write_results(
        f"image-{args.arch}",
        {row.name: {**row.deskphone, "target": row.target, "met": row.met} for row in rows},
    )
    print(markdown_table(rows))
    print(f"\nwritten to {path}")
    return 0 if all(row.met is not False for row in rows) else 1


if __name__ == "__main__":
    raise SystemExit(main())
