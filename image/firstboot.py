#!/opt/deskphone/venv/bin/python
"""deskphone image: take the settings a user copied onto the card's FAT boot partition.

Anyone can write a FAT partition from any computer, so that is where a new phone gets its
settings: deskphone.toml, password files (NAME.secret), wpa_supplicant.conf, authorized_keys and
hostname.txt. At every boot this helper (deskphone-firstboot.service) checks what it finds
there, with the firmware's own `deskphone check-config` for the config, moves what is good to
the data partition and removes it from the FAT partition (passwords and keys must not stay on a
partition every computer can read), and leaves the previous settings in place when something is
wrong. Problems go to the journal, to deskphone-error.txt on the card, and to the phone's
display, through the firmware's own display code. With nothing to take it only applies the
saved hostname.

`--no-sip-stack` is the other job: in an image built without pjsua2 (an arm64 build with no
pjproject source) the phone service runs it as its ExecCondition, so the phone says why it
cannot start instead of failing on an import.
"""

from __future__ import annotations

import argparse
import contextlib
import grp
import logging
import os
import re
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

log = logging.getLogger("deskphone-firstboot")

ERROR_FILE = "deskphone-error.txt"
NO_SIP_REASON = Path("/usr/share/deskphone/pjsua2-missing")
# How long a problem stays on the display before the phone (with its previous settings) draws
# its own screen over it.
ERROR_SHOW_SECONDS = 20.0
HOSTNAME = re.compile(r"^(?!-)[A-Za-z0-9-]{1,63}(?<!-)$")
KEY_TYPES = re.compile(r"^(ssh-(ed25519|rsa|dss)|ecdsa-sha2-nistp\d+|sk-\S+)$")


@dataclass(frozen=True)
class Layout:
    """Where things are; tests point it at temporary directories."""

    boot: Path = Path("/boot/firmware")
    config_dir: Path = Path("/etc/deskphone")
    data: Path = Path("/data")
    deskphone: Path = Path("/opt/deskphone/venv/bin/deskphone")
    service_group: str = "deskphone"
    remount: bool = True  # the FAT partition is mounted read-only and must be made writable

    @property
    def config(self) -> Path:
        return self.config_dir / "deskphone.toml"

    @property
    def hostname_file(self) -> Path:
        return self.data / "system" / "hostname"

    @property
    def wifi_file(self) -> Path:
        return self.data / "network" / "wpa_supplicant-wlan0.conf"

    @property
    def ssh_dir(self) -> Path:
        return self.data / "ssh"


@dataclass
class Outcome:
    taken: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


class SettingRejectedError(Exception):
    """A file from the card that is not taken; the message says why, for a person."""


# ------------------------------------------------------------------ finding files on the card


def find_on_card(boot: Path, name: str) -> Path | None:
    """The file `name` on the card, also as NAME.txt (as editors save it), in any letter case."""
    wanted = {name.lower(), f"{name.lower()}.txt"}
    try:
        entries = sorted(boot.iterdir())
    except OSError:
        return None
    return next((p for p in entries if p.name.lower() in wanted and p.is_file()), None)


def secrets_on_card(boot: Path) -> list[Path]:
    try:
        return sorted(p for p in boot.iterdir() if p.suffix.lower() == ".secret" and p.is_file())
    except OSError:
        return []


def remove_from_card(path: Path) -> None:
    """Overwrite the file's bytes, then delete it: on FAT the clusters would still hold them."""
    size = path.stat().st_size
    with open(path, "r+b") as f:
        f.write(b"\0" * size)
        f.flush()
        os.fsync(f.fileno())
    path.unlink()


@contextlib.contextmanager
def card_writable(layout: Layout) -> Iterator[None]:
    """The FAT partition read-write for the duration, then read-only again (it stays
    read-only otherwise, so a power cut cannot damage it)."""
    if layout.remount:
        subprocess.run(["mount", "-o", "remount,rw", str(layout.boot)], check=True)
    try:
        yield
    finally:
        os.sync()
        if layout.remount:
            subprocess.run(["mount", "-o", "remount,ro", str(layout.boot)], check=False)


# ------------------------------------------------------------------ writing files


def write_file(path: Path, data: bytes, mode: int, group: int | None = None) -> None:
    """Write atomically (a power cut leaves the old file or the new one), with `mode`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".new")
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        os.write(fd, data)
        os.fchmod(fd, mode)
        if group is not None:
            os.fchown(fd, -1, group)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(partial, path)


def service_gid(layout: Layout) -> int | None:
    """The group that may read the config (the phone's service user's)."""
    try:
        return grp.getgrnam(layout.service_group).gr_gid
    except KeyError:
        return None


# ------------------------------------------------------------------ each kind of setting


def take_secret(layout: Layout, source: Path) -> str:
    data = source.read_bytes()
    if not data.strip():
        raise SettingRejectedError(f"{source.name} is empty")
    write_file(layout.config_dir / source.name, data, 0o640, service_gid(layout))
    return source.name


def take_config(layout: Layout, source: Path) -> str:
    """Check the config where it will live (so relative password files resolve the same);
    install it only if `deskphone check-config` accepts it."""
    staged = layout.config_dir / "deskphone.toml.check"
    write_file(staged, source.read_bytes(), 0o640, service_gid(layout))
    try:
        result = subprocess.run(
            [str(layout.deskphone), "check-config", str(staged)],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        if result.returncode != 0:
            detail = (result.stderr or result.stdout).strip().replace(str(staged), source.name)
            raise SettingRejectedError(
                detail or f"{source.name} was not accepted (status {result.returncode})"
            )
        os.replace(staged, layout.config)
    finally:
        staged.unlink(missing_ok=True)
    return source.name


def take_wifi(layout: Layout, source: Path) -> str:
    text = source.read_text(encoding="utf-8", errors="replace")
    if not re.search(r"network\s*=\s*\{", text) or "ssid" not in text:
        raise SettingRejectedError(f'{source.name} has no network={{ ssid="..." }} block')
    if "ctrl_interface" not in text:  # so that wpa_cli works (as root) over SSH
        text = "ctrl_interface=DIR=/run/wpa_supplicant\n" + text
    write_file(layout.wifi_file, text.encode(), 0o600)
    return source.name


def take_ssh_keys(layout: Layout, source: Path) -> str:
    lines = source.read_text(encoding="utf-8", errors="replace").splitlines()
    keys = [line.strip() for line in lines if line.strip() and not line.lstrip().startswith("#")]
    bad = [key for key in keys if not _looks_like_key(key)]
    if not keys or bad:
        raise SettingRejectedError(
            f"{source.name}: expected SSH public keys (ssh-ed25519 AAAA... name), one a line"
        )
    write_file(layout.ssh_dir / "authorized_keys", ("\n".join(keys) + "\n").encode(), 0o600)
    host_key = layout.ssh_dir / "ssh_host_ed25519_key"
    if not host_key.exists():
        subprocess.run(
            ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "deskphone", "-f", str(host_key)],
            check=True,
        )
    return source.name


def _looks_like_key(line: str) -> bool:
    # Options may come first (from="...",no-pty ssh-ed25519 AAAA...): find the key type.
    fields = line.split()
    return any(
        KEY_TYPES.match(word) and i + 1 < len(fields) and fields[i + 1].startswith("AAAA")
        for i, word in enumerate(fields)
    )


def take_hostname(layout: Layout, source: Path) -> str:
    name = source.read_text(encoding="utf-8", errors="replace").strip()
    if not HOSTNAME.match(name):
        raise SettingRejectedError(
            f"{source.name}: {name!r} is not a host name (letters, digits and '-')"
        )
    write_file(layout.hostname_file, (name + "\n").encode(), 0o644)
    return source.name


Taker = Callable[[Layout, Path], str]

# The order matters: password files (taken first, by take_settings) before the config that
# names them.
TAKERS: tuple[tuple[str, Taker], ...] = (
    ("hostname", take_hostname),
    ("wpa_supplicant.conf", take_wifi),
    ("authorized_keys", take_ssh_keys),
    ("deskphone.toml", take_config),
)


def take_settings(layout: Layout) -> Outcome:
    """Take every setting on the card; each is removed from the card whether taken or not
    (a rejected config may hold a password), and each problem is reported."""
    outcome = Outcome()
    found: list[tuple[Path, Taker]] = [(p, take_secret) for p in secrets_on_card(layout.boot)]
    for name, taker in TAKERS:
        path = find_on_card(layout.boot, name)
        if path is not None:
            found.append((path, taker))
    if not found:
        return outcome
    try:
        _take(layout, found, outcome)
    except subprocess.CalledProcessError as err:  # the card would not become writable
        outcome.problems.append(f"cannot write to {layout.boot}: {err}; nothing was taken")
    return outcome


def _take(layout: Layout, found: list[tuple[Path, Taker]], outcome: Outcome) -> None:
    with card_writable(layout):
        for path, taker in found:
            try:
                outcome.taken.append(taker(layout, path))
            except SettingRejectedError as err:
                outcome.problems.append(str(err))
                _keep_rejected(layout, path)
            except OSError as err:
                outcome.problems.append(f"{path.name}: {err.strerror or err}")
            with contextlib.suppress(FileNotFoundError):
                remove_from_card(path)
        error_file = layout.boot / ERROR_FILE
        if outcome.problems:
            report = "\n\n".join(outcome.problems) + "\n"
            error_file.write_text(
                f"deskphone: settings not taken at {time.strftime('%Y-%m-%d %H:%M:%S')}; "
                "the phone keeps its previous ones.\n\n" + report
            )
        else:
            error_file.unlink(missing_ok=True)


def _keep_rejected(layout: Layout, path: Path) -> None:
    """A rejected file is kept (root only) on the data partition, for a look over SSH."""
    with contextlib.suppress(OSError):
        write_file(layout.data / "rejected" / path.name, path.read_bytes(), 0o600)


def short_problem(report: str) -> str:
    """The first problem of a report, short enough for the display: check-config's heading
    line ("...: invalid config FILE:") and the file name before each problem are left out."""
    lines = [line.strip() for line in report.splitlines() if line.strip()]
    problems = [line for line in lines if not line.endswith(":")] or lines
    first = problems[0]
    name, colon, rest = first.partition(": ")
    return rest if colon and name.endswith((".toml", ".txt", ".conf")) else first


def apply_hostname(layout: Layout) -> None:
    try:
        name = layout.hostname_file.read_text().strip()
    except OSError:
        return
    if HOSTNAME.match(name) and name != socket.gethostname():
        try:
            socket.sethostname(name)
        except OSError as err:
            log.warning("cannot set the hostname %s: %s", name, err.strerror)


# ------------------------------------------------------------------ the display


def show_notice(layout: Layout, headline: str, detail: str) -> Any:
    """Put a message on the phone's display with the firmware's own code (a simulated display,
    logged, where there is no Pi), wired as the config says, or as by default where there is
    none or it is broken; returns the firmware's `Display`, or None when it could not be
    opened. Never fails: the journal has the message anyway."""
    log.info("display: %s: %s", headline, detail)
    try:
        from deskphone.config import default_config, load_config
        from deskphone.hw.kits import show_notice as show_on_display

        try:
            config = load_config(layout.config)
        except Exception:  # no config or a broken one: the default display wiring
            config = default_config()
        return show_on_display(config, headline, detail)
    except Exception as err:  # the display is a courtesy here; report and go on
        log.warning("cannot show the message on the display: %s", err)
        return None


# ------------------------------------------------------------------ entry points


def first_boot(layout: Layout, error_pause: float = ERROR_SHOW_SECONDS) -> int:
    apply_hostname(layout)
    outcome = take_settings(layout)
    apply_hostname(layout)
    for name in outcome.taken:
        log.info("took %s from the card", name)
    for problem in outcome.problems:
        log.error("not taken: %s", problem)
    if outcome.problems:
        first = short_problem(outcome.problems[0])
        show_notice(layout, "Settings not taken", f"{first} (see {ERROR_FILE})")
        if layout.config.exists():
            time.sleep(error_pause)  # let it be read before the phone draws its own screen
    elif not layout.config.exists():
        show_notice(
            layout, "No settings yet", "copy deskphone.toml onto the card's DESKBOOT partition"
        )
    return 0


def no_sip_stack(layout: Layout, reason_file: Path = NO_SIP_REASON) -> int:
    """ExecCondition of the phone in an image without pjsua2: say why, and do not start."""
    try:
        reason = reason_file.read_text().strip()
    except OSError:
        reason = "this image has no SIP stack"
    message = f"cannot start: pjsua2 (the SIP stack) is not in this image: {reason}"
    print(f"deskphone: {message}", file=sys.stderr)
    show_notice(layout, "No SIP stack", message)
    return 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--no-sip-stack", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    layout = Layout()
    return no_sip_stack(layout) if args.no_sip_stack else first_boot(layout)


if __name__ == "__main__":
    sys.exit(main())
