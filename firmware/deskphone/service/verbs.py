"""The command-line verbs that talk to a running phone over its control socket:
`deskphone status`, `dial`, `answer`, `hangup`, `hold`, `dtmf`, `history`, `battery`, `reload`,
and `command` for any other entry of the phone's command table.

Exit status: 0 done; 1 the phone refused (wrong state, bad argument); 2 `reload` found the new
config invalid (the running one stays); 3 no phone to talk to (not running, no permission).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from deskphone.service import queries
from deskphone.service.control import ControlError, client_socket_path, request

EXIT_REFUSED = 1
EXIT_CONFIG = 2
EXIT_UNREACHABLE = 3


def _outcome(result: dict[str, Any]) -> str:
    """After a command: where the phone is now, in a few words."""
    call = result.get("call")
    if call:
        return f"{result['state']}: {call['number']}"
    return str(result["state"])


def _reload_text(result: dict[str, Any]) -> str:
    return str(result["summary"])


# verb -> (help, [(argument, argparse options)], how the result is printed)
Printer = Callable[[Any], str]
VERBS: dict[str, tuple[str, list[tuple[str, dict[str, Any]]], Printer]] = {
    "status": ("show what the running phone is doing", [], queries.format_status),
    "dial": ("call a number or SIP URI", [("number", {"help": "digits or a SIP URI"})], _outcome),
    "answer": ("answer the ringing call", [], _outcome),
    "hangup": ("end the call (or reject a ringing one)", [], _outcome),
    "hold": (
        "put the call on hold or take it back",
        [("setting", {"nargs": "?", "choices": ("on", "off"), "help": "no argument: toggle"})],
        _outcome,
    ),
    "dtmf": ("send DTMF digits in the call", [("digits", {"help": "0-9, *, #, A-D"})], _outcome),
    "history": (
        "show the call log, newest first",
        [("-n", {"type": int, "dest": "count", "help": "at most this many calls"})],
        queries.format_history,
    ),
    "battery": ("show the battery backup's state", [], queries.format_battery),
    "reload": ("re-read the config file (an invalid one is refused)", [], _reload_text),
    "command": (
        "run any command of the phone's table (see `deskphone command commands`)",
        [
            ("name", {"help": "the command, e.g. mute, dnd, volume, transfer"}),
            ("args", {"nargs": "*", "help": "its arguments"}),
        ],
        lambda result: (
            _outcome(result)
            if isinstance(result, dict) and "state" in result
            else json.dumps(result, indent=2)
        ),
    ),
}


def add_verbs(commands: Any) -> None:
    """Add the verbs to the `deskphone` parser's sub-commands."""
    for verb, (summary, arguments, _) in VERBS.items():
        parser = commands.add_parser(verb, help=f"{summary} (over the control socket)")
        for name, options in arguments:
            parser.add_argument(name, **options)
        parser.add_argument(
            "--socket",
            type=Path,
            help="the control socket (default: $DESKPHONE_SOCKET, else where the daemon listens)",
        )
        parser.add_argument("--json", action="store_true", help="print the answer as JSON")
        parser.add_argument("--timeout", type=float, default=10.0, help="seconds to wait")


def run_verb(args: argparse.Namespace) -> int:
    """Send the verb to the phone and print the answer; returns the exit status."""
    verb = args.command
    _, _, printer = VERBS[verb]
    command, words = _request_of(verb, args)
    path = args.socket or client_socket_path()
    try:
        result = request(path, command, words, timeout=args.timeout)
    except ControlError as err:
        print(f"deskphone: {err}", file=sys.stderr)
        if err.kind == "unreachable":
            return EXIT_UNREACHABLE
        return EXIT_CONFIG if err.kind == "config" else EXIT_REFUSED
    if args.json:
        print(json.dumps(result, indent=2))
    elif result is not None:
        print(printer(result))
    return 0


def _request_of(verb: str, args: argparse.Namespace) -> tuple[str, list[str]]:
    if verb == "command":
        return args.name, list(args.args)
    if verb == "dial":
        return verb, [args.number]
    if verb == "dtmf":
        return verb, [args.digits]
    if verb == "hold":
        return verb, [args.setting] if args.setting else []
    if verb == "history":
        return verb, [str(args.count)] if args.count else []
    return verb, []
