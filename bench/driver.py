"""The phone in a process of its own, for benchmarks: /proc then shows its CPU and memory alone.

    python -m bench.driver CONFIG

It prints `ready` once started, then reads one command per line on stdin (`dial 1002`,
`hangup`, ...) and runs it through the phone's one command table, answering `ok` or
`error <message>`; `quit` (or end of input) shuts it down as SIGTERM would.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

from deskphone.app import App
from deskphone.config import load_config
from deskphone.core.phone import CommandError
from deskphone.service.logs import setup_logging


async def drive(config_path: Path) -> None:
    setup_logging("warning")
    app = App(load_config(config_path), kit="sim")
    await app.start()
    loop = asyncio.get_running_loop()
    print("ready", flush=True)
    try:
        while line := (await loop.run_in_executor(None, sys.stdin.readline)).strip():
            name, *args = line.split()
            if name == "quit":
                break
            try:
                app.command(name, *args)
                print("ok", flush=True)
            except CommandError as err:
                print(f"error {err}", flush=True)
    finally:
        await app.stop()


if __name__ == "__main__":
    asyncio.run(drive(Path(sys.argv[1])))
