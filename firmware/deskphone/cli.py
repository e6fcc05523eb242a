"""The `deskphone` command: one entry point for the daemon, the simulator and the tools."""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import logging
import os
import signal
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from deskphone import __version__
from deskphone.config import (
    DEFAULT_CONFIG_PATH,
    Config,
    default_config,
    describe_schema,
)
from deskphone.errors import ConfigError, DeskphoneError
from deskphone.service.logs import setup_logging
from deskphone.service.verbs import VERBS, add_verbs, run_verb

if TYPE_CHECKING:
    from deskphone.app import App

log = logging.getLogger("deskphone")

USER_CONFIG_PATH = Path("~/.config/deskphone/deskphone.toml")
EXIT_CONFIG = 2
EXIT_FAILURE = 1


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="deskphone",
        description="A Raspberry Pi SIP desk phone.",
    )
    parser.add_argument("--version", action="version", version=f"deskphone {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = commands.add_parser("run", help="run the phone daemon")
    run.add_argument(
        "--config",
        type=Path,
        default=DEFAULT_CONFIG_PATH,
        help=f"config file (default {DEFAULT_CONFIG_PATH})",
    )
    run.add_argument(
        "--kit",
        choices=("auto", "pi", "sim"),
        help="hardware kit, overriding [hardware] kit in the config",
    )
    run.add_argument("--debug", action="store_true", help="log at debug level")

    sim = commands.add_parser(
        "sim", help="run the phone simulated in this terminal (keyboard as keypad)"
    )
    sim.add_argument(
        "--config",
        type=Path,
        help=f"config file (default {DEFAULT_CONFIG_PATH} if it exists, "
        f"else {USER_CONFIG_PATH}, else no account)",
    )
    sim.add_argument(
        "--profile",
        help="hardware profile to simulate (keypad, keys, LEDs), overriding [hardware] profile",
    )
    sim.add_argument("--debug", action="store_true", help="log at debug level")

    check = commands.add_parser("check-config", help="validate a config file without starting")
    check.add_argument("file", type=Path, nargs="?", default=DEFAULT_CONFIG_PATH)
    check.add_argument("--explain", action="store_true", help="print every setting and exit")

    audio = commands.add_parser("audio", help="sound devices: what is there, what the config picks")
    audio.add_argument("action", choices=("list",), help="list: the cards and devices found")
    audio.add_argument("--config", type=Path, help="also say which devices its [audio] names pick")
    add_verbs(commands)  # status, dial, answer, ... reload: talk to the running phone
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "check-config":
        return check_config(args.file, explain=args.explain)
    if args.command == "audio":
        return audio_list(args.config)
    if args.command in VERBS:
        return run_verb(args)
    if args.command == "run":
        config = _load(args.config, on_display=True, kit=args.kit)
        if config is None:
            return EXIT_CONFIG
        setup_logging("debug" if args.debug else config.phone.log_level)
        return asyncio.run(serve(config, kit=args.kit))
    if args.command == "sim":
        config = _load(args.config) if args.config else _sim_config()
        if config is None:
            return EXIT_CONFIG
        from deskphone.hw.kits import prepare_simulator

        try:
            config, notes = prepare_simulator(config, args.profile)
        except ConfigError as err:
            print(f"deskphone: {err}", file=sys.stderr)
            return EXIT_CONFIG
        setup_logging("debug" if args.debug else "warning")
        return asyncio.run(serve(config, kit="sim", terminal=True, notes=notes))
    return EXIT_FAILURE


def check_config(path: Path, *, explain: bool = False) -> int:
    if explain:
        print(describe_schema())
        return 0
    config = _load(path)
    if config is None:
        return EXIT_CONFIG
    accounts = ", ".join(f"{a.user}@{a.registrar.host}" for a in config.accounts) or "none"
    print(f"{path}: OK (accounts: {accounts}; hardware profile {config.hardware.profile})")
    return 0


def audio_list(path: Path | None) -> int:
    """`deskphone audio list`: the sound cards and devices, and what the config's names pick."""
    from deskphone.audio.devices import describe_devices

    config = _load(path) if path is not None else default_config()
    if config is None:
        return EXIT_CONFIG
    print(describe_devices(config.audio.handset_device, config.audio.ringer_device))
    return 0


def _load(path: Path, *, on_display: bool = False, kit: str | None = None) -> Config | None:
    """Load and check a config (the hardware profile it names, the power-loss pin against
    that profile); print why not. A reload checks the same way. `on_display`: the problem also
    goes on the display of the phone about to run (wired as by default: the config that would
    say otherwise is the broken one)."""
    from deskphone.service.reload import validate

    try:
        config = validate(path)
    except ConfigError as err:
        print(f"deskphone: {err}", file=sys.stderr)
        if on_display:
            from deskphone.hw.kits import show_notice

            first = str(err.problems[0]) if err.problems else str(err)
            more = f" (and {len(err.problems) - 1} more)" if len(err.problems) > 1 else ""
            show_notice(default_config(), "config error", first + more, kit=kit)
        return None
    return config


def _sim_config() -> Config | None:
    for path in (DEFAULT_CONFIG_PATH, USER_CONFIG_PATH.expanduser()):
        if path.exists():
            return _load(path)
    print(
        "deskphone: no config found, starting without an account.\n"
        f"  To add one, put an [[account]] section in {USER_CONFIG_PATH} "
        "(see README, 'Configuration'), e.g.\n"
        '    [[account]]\n    registrar = "sip:pbx.example.org"\n'
        '    user = "1001"\n    password = "..."',
        file=sys.stderr,
    )
    config = default_config()
    # Without a config nobody chose a state directory: keep the user's settings and call log
    # in their own home rather than the system's /var/lib, which they cannot write.
    phone = dataclasses.replace(config.phone, state_dir=user_state_dir())
    return dataclasses.replace(config, phone=phone)


def user_state_dir() -> Path:
    """The XDG state directory for deskphone ($XDG_STATE_HOME or ~/.local/state)."""
    base = os.environ.get("XDG_STATE_HOME") or str(Path("~/.local/state").expanduser())
    return Path(base) / "deskphone"


async def serve(
    config: Config, *, kit: str | None = None, terminal: bool = False, notes: Sequence[str] = ()
) -> int:
    """Run until SIGTERM/SIGINT (or `q` in the simulator); unregister and shut down cleanly."""
    from deskphone.app import App

    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    app = App(config, kit=kit)
    loop.add_signal_handler(signal.SIGHUP, _reload_on_hangup, app)
    front_end = None
    try:
        await app.start()
    except DeskphoneError as err:
        log.error("%s", err)
        print(f"deskphone: {err}", file=sys.stderr)
        from deskphone.hw.kits import show_notice

        show_notice(config, "cannot start", str(err), kit=kit)
        return EXIT_FAILURE
    try:
        if terminal:
            from deskphone.hw.terminal import TerminalFrontEnd

            assert app.kit is not None
            front_end = TerminalFrontEnd(app.kit, loop, stop.set, notes=notes)
            front_end.start()
        # Until told to stop, or until the battery ran out and the phone powered itself off.
        waits = {loop.create_task(stop.wait()), loop.create_task(app.service.finished.wait())}
        _, pending = await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        for task in pending:
            task.cancel()
    finally:
        if front_end is not None:
            front_end.close()
        await app.stop()
    return 0


def _reload_on_hangup(app: App) -> None:
    """SIGHUP: re-read the config; an invalid one is reported and the running one stays."""
    if app.stack is None:
        log.warning("SIGHUP before the phone is up: not reloading")
        return

    def done(task: asyncio.Task[object]) -> None:
        if not task.cancelled() and isinstance(task.exception(), DeskphoneError):
            log.warning("SIGHUP: %s", task.exception())  # already on the display if config

    asyncio.get_running_loop().create_task(app.service.reload()).add_done_callback(done)
