"""Every benchmark in one run, figures side by side with baresip's where they have a peer:

    python -m bench [--runs N] [--only NAME ...] [--quick]

Writes bench/results/latest.json and bench/results/latest.md (medians with min–max spread and
the ratio to baresip). Each module in MODULES has `run(runs, workdir, quick) -> list[Figure]`.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import sys
import tempfile
import time
from pathlib import Path

from bench.common import Figure, markdown_table, write_table

MODULES = (
    "phones",  # deskphone against baresip: start, call setup, CPU, memory
    "startup",  # deskphone alone: import time and each start-up step
    "keys",  # key edge -> screen and -> INVITE; keypad and display idle CPU
    "audio",  # added latency each way; PESQ under loss and jitter against baresip
    "service",  # the daemon under systemd's eyes: READY, watchdog, control socket, state
    "image",  # the amd64 SD-card image under qemu: boot -> registered, writes while idle
)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3, help="repeats per figure (default 3)")
    parser.add_argument("--only", nargs="*", choices=MODULES, help="run only these")
    parser.add_argument("--quick", action="store_true", help="shorter windows, to try it out")
    args = parser.parse_args(argv)
    rows: list[Figure] = []
    with tempfile.TemporaryDirectory(prefix="deskphone-bench-") as tmp:
        for name in args.only or MODULES:
            if importlib.util.find_spec(f"bench.{name}") is None:
                print(f"bench: {name}: not written yet, skipped", file=sys.stderr)
                continue
            began = time.monotonic()
            print(f"bench: {name} ...", file=sys.stderr, flush=True)
            module = importlib.import_module(f"bench.{name}")
            rows += module.run(args.runs, Path(tmp) / name, args.quick)
            print(f"bench: {name} done in {time.monotonic() - began:.0f} s", file=sys.stderr)
    json_path, md_path = write_table(rows, args.runs)
    print(markdown_table(rows))
    print(f"\nwritten to {json_path} and {md_path}")
    missed = [row.name for row in rows if row.met is False]
    if missed:
        print(f"targets missed: {', '.join(missed)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
