"""The SD-card image booted under qemu: build it, put settings on its card, boot, talk to it.

The guest gets user-mode networking only (it reaches the host's 127.0.0.1 as 10.0.2.2, and
nothing else is routed for it by this machine's tests). Its serial console goes to a file; the
QEMU monitor (QMP) presses the power button; the QEMU guest agent in the image (it starts only
under qemu) runs commands inside for the test to read state: service status, disk statistics.

No pytest here, so bench/image.py drives the same VM.
"""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
import signal
import socket
import struct
import subprocess
import tempfile
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, Self

from tests.rig import RigError, background_work, live_peers, signal_group

REPO = Path(__file__).resolve().parents[2]
IMAGE_DIR = REPO / "image"
BUILD_DIR = IMAGE_DIR / "build"
SECTOR = 512
GUEST_HOST_ADDRESS = "10.0.2.2"  # the host's 127.0.0.1, as qemu's user network shows it
# systemd's line on the console once the system is up (the phone's unit is Type=notify, so the
# phone has said READY by then, or was skipped).
MULTI_USER = r"Reached target .*multi-user"


@dataclass(frozen=True)
class Machine:
    """How qemu runs one architecture: software emulation (TCG), direct kernel boot."""

    qemu: str
    args: tuple[str, ...]
    console: str


MACHINES = {
    "amd64": Machine("qemu-system-x86_64", ("-M", "q35", "-cpu", "max"), "ttyS0"),
    "arm64": Machine("qemu-system-aarch64", ("-M", "virt", "-cpu", "cortex-a53"), "ttyAMA0"),
}

# What the image build needs on this machine (installed by ./bootstrap.sh test).
BUILD_TOOLS = ("mmdebstrap", "genimage", "mkfs.ext4", "mkfs.vfat", "mcopy", "make")


def missing_tools(arch: str) -> list[str]:
    tools = [*BUILD_TOOLS, MACHINES[arch].qemu]
    return [tool for tool in tools if shutil.which(tool) is None]


def image_path(arch: str) -> Path:
    return BUILD_DIR / f"deskphone-{arch}.img"


class ImageBuild:
    """`make image ARCH=arch` (cached steps are reused) running in the background, so that a
    test session can build while its other tests run. It runs at the lowest CPU priority: the
    tests that measure time or audio keep the processor whenever they want it.

    Tests reach no host but this one and the package registries, so the arm64 build does not
    try to download pjproject from GitHub: it uses $PJPROJECT_TARBALL when set, else builds
    without pjsua2 (and the service says so)."""

    def __init__(self, arch: str, log_path: Path) -> None:
        self.arch = arch
        self.log_path = log_path
        env = dict(os.environ)
        if not env.get("PJPROJECT_TARBALL"):
            env["PJPROJECT_DOWNLOAD"] = "no"
        self.began = time.monotonic()
        with open(log_path, "wb") as log:
            self._proc = subprocess.Popen(
                ["nice", "-n", "19", "make", "-C", str(REPO), "image", f"ARCH={arch}"],
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        live_peers.add(self)
        background_work.add(self)

    def _signal(self, sig: signal.Signals) -> None:
        if self._proc.poll() is None:
            signal_group(self._proc, sig)

    def pause(self) -> None:
        """Stop every process of the build until `resume` (tests that need the machine)."""
        self._signal(signal.SIGSTOP)

    def resume(self) -> None:
        self._signal(signal.SIGCONT)

    def wait(self, timeout: float = 1800.0) -> tuple[Path, float]:
        """The image and the seconds the build took; RigError with the log's end if it failed."""
        try:
            code = self._proc.wait(timeout)
        except subprocess.TimeoutExpired as err:
            self.kill()
            message = f"make image ARCH={self.arch}: not done within {timeout:.0f} s"
            raise RigError(message) from err
        seconds = time.monotonic() - self.began
        live_peers.discard(self)
        background_work.discard(self)
        if code != 0:
            lines = self.log_path.read_text(errors="replace").splitlines()
            tail = "\n".join(lines[-30:])
            raise RigError(f"make image ARCH={self.arch} failed ({code}):\n{tail}")
        return image_path(self.arch), seconds

    def kill(self) -> None:
        background_work.discard(self)
        if self._proc.poll() is None:
            self.resume()  # a stopped process group would not act on SIGTERM
            self._signal(signal.SIGTERM)
            try:
                self._proc.wait(30)
            except subprocess.TimeoutExpired:
                self._signal(signal.SIGKILL)
                self._proc.wait()
        live_peers.discard(self)


def build_image(arch: str, log_path: Path, timeout: float = 1800.0) -> tuple[Path, float]:
    """`make image ARCH=arch`, waited for; returns the image and seconds taken."""
    return ImageBuild(arch, log_path).wait(timeout)


# ---------------------------------------------------------------- the card's partitions


@dataclass(frozen=True)
class Partition:
    number: int
    offset: int  # bytes from the start of the disk
    size: int


def partitions(disk: Path) -> list[Partition]:
    """The MBR's primary partitions (the image has three: boot, root, data)."""
    with open(disk, "rb") as f:
        mbr = f.read(SECTOR)
    if mbr[510:512] != b"\x55\xaa":
        raise RigError(f"{disk} has no MBR partition table")
    found = []
    for number in range(1, 5):
        entry = mbr[446 + 16 * (number - 1) : 446 + 16 * number]
        start, sectors = struct.unpack_from("<II", entry, 8)
        if sectors:
            found.append(Partition(number, start * SECTOR, sectors * SECTOR))
    return found


def _fat(disk: Path) -> str:
    """The mtools address of the card's FAT boot partition (partition 1)."""
    return f"{disk}@@{partitions(disk)[0].offset}"


def card_files(disk: Path) -> list[str]:
    """The names in the FAT partition's top folder."""
    out = subprocess.run(
        ["mdir", "-b", "-i", _fat(disk), "::"], capture_output=True, text=True, check=True
    ).stdout
    return [line.rstrip("/").removeprefix("::/") for line in out.split()]


def put_on_card(disk: Path, files: dict[str, str]) -> None:
    """Copy files (name -> text) onto the FAT partition, as a user would from a computer."""
    with tempfile.TemporaryDirectory() as tmp:
        for name, text in files.items():
            source = Path(tmp, name)
            source.write_text(text)
            subprocess.run(["mcopy", "-o", "-i", _fat(disk), str(source), f"::{name}"], check=True)


def read_from_card(disk: Path, name: str) -> bytes:
    return subprocess.run(
        ["mcopy", "-n", "-i", _fat(disk), f"::{name}", "-"], capture_output=True, check=True
    ).stdout


# ---------------------------------------------------------------- the VM


class Vm:
    """One boot of a disk image under qemu (TCG), its console in `workdir/console.log`.

    The disk is used in place: give it a copy of the image (`copy_image`)."""

    def __init__(
        self, disk: Path, arch: str, workdir: Path, *, memory_mb: int = 1024, cpus: int = 2
    ) -> None:
        self.disk = disk
        self.arch = arch
        self.machine = MACHINES[arch]
        self.workdir = workdir
        self.memory_mb = memory_mb
        self.cpus = cpus
        self.console_path = workdir / "console.log"
        # Unix socket paths are short (108 bytes): keep them in a directory of their own.
        self._sockets = Path(tempfile.mkdtemp(prefix="dp-vm-"))
        self.qmp_path = self._sockets / "qmp.sock"
        self.qga_path = self._sockets / "qga.sock"
        self._proc: subprocess.Popen[bytes] | None = None
        self.started_at = 0.0

    def command(self) -> list[str]:
        """The qemu command line: kernel, initrd and command line from the card's FAT
        partition, as the Pi's firmware takes them."""
        boot = self.workdir / "boot"
        boot.mkdir(exist_ok=True)
        for name in ("vmlinuz", "initrd.img", "cmdline.txt"):
            subprocess.run(
                ["mcopy", "-o", "-n", "-i", _fat(self.disk), f"::{name}", str(boot / name)],
                check=True,
            )
        words = (boot / "cmdline.txt").read_text().split()
        words = [w for w in words if not w.startswith("console=")]
        # Without show_status systemd may never print "Reached target" on a serial console.
        words += [f"console={self.machine.console},115200", "systemd.show_status=1"]
        return [
            self.machine.qemu, *self.machine.args,
            "-m", str(self.memory_mb), "-smp", str(self.cpus),
            "-nographic", "-no-reboot",
            "-kernel", str(boot / "vmlinuz"), "-initrd", str(boot / "initrd.img"),
            "-append", " ".join(words),
            "-drive", f"file={self.disk},format=raw,if=none,id=card",
            "-device", "virtio-blk-pci,drive=card",
            "-nic", "user,model=virtio-net-pci",
            "-device", "virtio-serial-pci",
            "-chardev", f"socket,path={self.qga_path},server=on,wait=off,id=qga",
            "-device", "virtserialport,chardev=qga,name=org.qemu.guest_agent.0",
            "-qmp", f"unix:{self.qmp_path},server=on,wait=off",
        ]  # fmt: skip

    def start(self) -> Self:
        command = self.command()
        with open(self.console_path, "wb") as console:
            self.started_at = time.monotonic()
            self._proc = subprocess.Popen(
                command,
                stdin=subprocess.DEVNULL,
                stdout=console,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        live_peers.add(self)
        return self

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def console(self) -> str:
        try:
            return self.console_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def console_tail(self, lines: int = 40) -> str:
        text = re.sub(r"\x1b\[[0-9;]*[A-Za-z]", "", self.console())
        return "\n".join(text.splitlines()[-lines:])

    def wait_for_console(self, pattern: str, timeout: float) -> float:
        """Wait until the console shows `pattern` (a regex); seconds since qemu started."""
        regex = re.compile(pattern)
        deadline = time.monotonic() + timeout
        while True:
            if regex.search(self.console()):
                return time.monotonic() - self.started_at
            if not self.running:
                raise RigError(f"qemu exited before {pattern!r}:\n{self.console_tail()}")
            if time.monotonic() > deadline:
                raise RigError(f"no {pattern!r} within {timeout}s:\n{self.console_tail()}")
            time.sleep(0.2)

    def wait_multi_user(self, timeout: float) -> float:
        return self.wait_for_console(MULTI_USER, timeout)

    # ------------------------------------------------------------ QMP (the machine)

    def qmp(self, command: str, **arguments: Any) -> Any:
        with socket.socket(socket.AF_UNIX) as sock:
            sock.settimeout(10)
            sock.connect(str(self.qmp_path))
            stream = sock.makefile("rwb")
            json.loads(stream.readline())  # the greeting
            for message in (
                {"execute": "qmp_capabilities"},
                {"execute": command, "arguments": arguments},
            ):
                stream.write(json.dumps(message).encode() + b"\n")
                stream.flush()
                while True:
                    reply = json.loads(stream.readline())
                    if "return" in reply or "error" in reply:
                        break  # events ("event": ...) are skipped
                if "error" in reply:
                    raise RigError(f"QMP {command}: {reply['error']}")
        return reply["return"]

    def press_power_button(self) -> None:
        """The ACPI power button: the guest shuts down as a person's press would make it."""
        self.qmp("system_powerdown")

    def wait_exit(self, timeout: float) -> float:
        """Wait for qemu to end (the guest powered off); seconds it took."""
        assert self._proc is not None
        began = time.monotonic()
        try:
            self._proc.wait(timeout)
        except subprocess.TimeoutExpired as err:
            raise RigError(
                f"the VM did not power off within {timeout}s:\n{self.console_tail()}"
            ) from err
        live_peers.discard(self)
        return time.monotonic() - began

    # ------------------------------------------------------------ the guest agent

    def agent(self, command: str, timeout: float = 10.0, **arguments: Any) -> Any:
        """One guest-agent command; RigError when the agent is not (yet) answering."""
        try:
            with socket.socket(socket.AF_UNIX) as sock:
                sock.settimeout(timeout)
                sock.connect(str(self.qga_path))
                stream = sock.makefile("rwb")
                # Resynchronise: a reply left over from an earlier timed-out client is skipped.
                token = int(time.monotonic() * 1000) % 2**31
                stream.write(
                    json.dumps({"execute": "guest-sync", "arguments": {"id": token}}).encode()
                    + b"\n"
                )
                stream.flush()
                while json.loads(stream.readline()).get("return") != token:
                    pass
                message: dict[str, Any] = {"execute": command}
                if arguments:
                    message["arguments"] = arguments
                stream.write(json.dumps(message).encode() + b"\n")
                stream.flush()
                reply = json.loads(stream.readline())
        except (OSError, ValueError) as err:
            raise RigError(f"guest agent {command}: {err}") from err
        if "error" in reply:
            raise RigError(f"guest agent {command}: {reply['error']}")
        return reply.get("return")

    def wait_agent(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while True:
            try:
                self.agent("guest-ping", timeout=3.0)
                return
            except RigError as err:
                if not self.running or time.monotonic() > deadline:
                    raise RigError(
                        f"guest agent not answering: {err}\n{self.console_tail()}"
                    ) from err
                time.sleep(1.0)

    def run(self, *argv: str, timeout: float = 60.0) -> tuple[int, str]:
        """Run a program in the guest; (exit status, stdout and stderr)."""
        started = self.agent(
            "guest-exec", path=argv[0], arg=list(argv[1:]), **{"capture-output": True}
        )
        deadline = time.monotonic() + timeout
        while True:
            status = self.agent("guest-exec-status", pid=started["pid"])
            if status.get("exited"):
                out = b"".join(
                    base64.b64decode(status.get(key, "")) for key in ("out-data", "err-data")
                )
                return int(status.get("exitcode", -1)), out.decode(errors="replace")
            if time.monotonic() > deadline:
                raise RigError(f"{' '.join(argv)} did not finish in the guest within {timeout}s")
            time.sleep(0.2)

    def check(self, *argv: str, timeout: float = 60.0) -> str:
        """Run a program in the guest that must succeed; its output."""
        code, out = self.run(*argv, timeout=timeout)
        if code != 0:
            raise RigError(f"{' '.join(argv)} failed in the guest ({code}): {out}")
        return out

    def sectors_written(self, partitions: Iterable[str]) -> dict[str, int]:
        """Sectors written to each partition (vda2, vda3, ...) since the guest booted."""
        out = self.check("cat", "/proc/diskstats")
        written = {}
        for line in out.splitlines():
            fields = line.split()
            if len(fields) > 9 and fields[2] in partitions:
                written[fields[2]] = int(fields[9])
        return written

    # ------------------------------------------------------------ teardown

    def kill(self) -> None:
        if self._proc is not None and self._proc.poll() is None:
            signal_group(self._proc, signal.SIGKILL)
            self._proc.wait(10)
        live_peers.discard(self)
        shutil.rmtree(self._sockets, ignore_errors=True)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.kill()


def copy_image(image: Path, disk: Path) -> Path:
    """A disposable copy of the image for one boot (sparse: quick, and little disk)."""
    subprocess.run(["cp", "--sparse=always", str(image), str(disk)], check=True)
    return disk


def phone_settings(registrar_port: int, user: str, password: str) -> dict[str, str]:
    """The files a user copies onto the card: deskphone.toml and a password file, for an
    account on the host's Kamailio (registrar 127.0.0.1, reached through 10.0.2.2)."""
    config = f"""\
[phone]
log_level = "info"

[audio]
backend = "null"

[[account]]
registrar = "sip:127.0.0.1:{registrar_port}"
outbound_proxy = "sip:{GUEST_HOST_ADDRESS}:{registrar_port}"
user = "{user}"
password_file = "/etc/deskphone/{user}.secret"
expiry = 300
"""
    return {"deskphone.toml": config, f"{user}.secret": password + "\n"}
