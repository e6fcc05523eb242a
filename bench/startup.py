"""Where deskphone's start-up time goes: the interpreter, importing the firmware, and each step
of `App.start` as the daemon logs it ("phone up in N ms (kit …, sip stack …, first events …)").

    python -m bench.startup [--runs N]
"""

from __future__ import annotations

import argparse
import re
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.common import Figure, figure, markdown_table
from tests.harness import phone_config_text
from tests.rig.kamailio import Kamailio

STEP = re.compile(r"(\w[\w ]*?) (\d+) ms")


def _seconds(command: list[str]) -> float:
    began = time.perf_counter()
    subprocess.run(command, check=True)
    return time.perf_counter() - began


def import_times(runs: int) -> list[Figure]:
    """Wall time of a bare interpreter, and what importing the firmware adds on top."""
    bare = [_seconds([sys.executable, "-c", "pass"]) for _ in range(runs)]
    loaded = [_seconds([sys.executable, "-c", "import deskphone.app"]) for _ in range(runs)]
    return [
        figure("python start (no firmware)", "ms", [t * 1000 for t in bare]),
        figure(
            "import deskphone.app",
            "ms",
            [(t - b) * 1000 for t, b in zip(loaded, bare, strict=True)],
        ),
    ]


def startup_steps(kamailio: Kamailio, workdir: Path, runs: int) -> list[Figure]:
    """Each App.start step, read from the daemon's own log line."""
    config = workdir / "startup.toml"
    config.write_text(
        phone_config_text(kamailio.port, "1001", kamailio.users["1001"], workdir=workdir).replace(
            'log_level = "debug"', 'log_level = "info"'
        )
    )
    steps: dict[str, list[float]] = {}
    for _ in range(runs):
        proc = subprocess.Popen(
            [sys.executable, "-m", "deskphone", "run", "--config", str(config)],
            stderr=subprocess.PIPE,
            text=True,
        )
        assert proc.stderr is not None
        for line in proc.stderr:
            if "phone up in" in line:
                total, _, parts = line.partition("phone up in ")[2].partition(" (")
                steps.setdefault("App.start total", []).append(float(total.split()[0]))
                for name, ms in STEP.findall(parts):
                    steps.setdefault(f"App.start: {name.strip()}", []).append(float(ms))
                break
        kamailio.wait_for_bindings("1001", 1, 10)
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=10)
        kamailio.wait_for_bindings("1001", 0, 5)
    return [figure(name, "ms", values) for name, values in steps.items()]


def run(runs: int, workdir: Path, quick: bool = False) -> list[Figure]:
    with Kamailio(workdir / "kamailio") as kamailio:
        return [*import_times(runs), *startup_steps(kamailio, workdir, runs)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="deskphone-bench-") as tmp:
        print(markdown_table(run(args.runs, Path(tmp))))


if __name__ == "__main__":
    main()
