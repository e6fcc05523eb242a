"""The `deskphone` command: one entry point for the daemon, the simulator and the tools."""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
from pathlib import Path

from deskphone import __version__
from deskphone.config import (
    DEFAULT_CONFIG_PATH,
    Config,
    default_config,
    describe_schema,
    load_config,
)
from deskphone.errors import ConfigError, DeskphoneError
from deskphone.service.logs import setup_logging

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
    sim.add_argument("--debug", action="store_true", help="log at debug level")

    check = commands.add_parser("check-config", help="validate a config file without starting")
    check.add_argument("file", type=Path, nargs="?", default=DEFAULT_CONFIG_PATH)
    check.add_argument("--explain", action="store_true", help="print every setting and exit")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "check-config":
        return check_config(args.file, explain=args.explain)
    if args.command == "run":
        config = _load(args.config)
        if config is None:
            return EXIT_CONFIG
        setup_logging("debug" if args.debug else config.phone.log_level)
        return asyncio.run(serve(config, kit=args.kit))
    if args.command == "sim":
        config = _load(args.config) if args.config else _sim_config()
        if config is None:
            return EXIT_CONFIG
        setup_logging("debug" if args.debug else "warning")
        return asyncio.run(serve(config, kit="sim", terminal=True))
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


def _load(path: Path) -> Config | None:
    """Load and check a config (and the hardware profile it names); print why not."""
    from deskphone.hw.profile import load_profile

    try:
        config = load_config(path)
        load_profile(config.hardware.profile, config.display.interface)
    except ConfigError as err:
        print(f"deskphone: {err}", file=sys.stderr)
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
    return default_config()


async def serve(config: Config, *, kit: str | None = None, terminal: bool = False) -> int:
    """Run until SIGTERM/SIGINT (or `q` in the simulator); unregister and shut down cleanly."""
    from deskphone.app import App

    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    app = App(config, kit=kit)
    front_end = None
    try:
        await app.start()
    except DeskphoneError as err:
        log.error("%s", err)
        print(f"deskphone: {err}", file=sys.stderr)
        return EXIT_FAILURE
    try:
        if terminal:
            from deskphone.hw.terminal import TerminalFrontEnd

            assert app.kit is not None
            front_end = TerminalFrontEnd(app.kit, loop, stop.set)
            front_end.start()
        await stop.wait()
    finally:
        if front_end is not None:
            front_end.close()
        await app.stop()
    return 0
