"""Call timing of deskphone against the real rig: start -> registered, key press -> INVITE on
the wire, INVITE -> answered (200 OK). Times on the wire are Kamailio's receive timestamps.

    python -m bench.call_timing [--runs N]
"""

from __future__ import annotations

import argparse
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.common import print_table, summary, write_results
from deskphone.core.phone import PhoneState
from tests.harness import PhoneUnderTest, phone_config_text
from tests.rig.baresip import CALL_CLOSED, Baresip
from tests.rig.kamailio import Kamailio


def start_to_registered(kamailio: Kamailio, workdir: Path, runs: int) -> list[float]:
    """Wall time from launching `deskphone run` to Kamailio sending its REGISTER 200 OK."""
    config = workdir / "daemon.toml"
    config.write_text(
        phone_config_text(kamailio.port, "1003", kamailio.users["1003"], workdir=workdir)
    )
    results = []
    for _ in range(runs):
        launched = time.time()
        proc = subprocess.Popen(
            [sys.executable, "-m", "deskphone", "run", "--config", str(config)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            kamailio.wait_for_bindings("1003", 1, 15)
            ok = [
                r
                for r in kamailio.replies()
                if r.method == "REGISTER"
                and r.code == 200
                and r.from_user == "1003"
                and r.time >= launched
            ]
            results.append(ok[0].time - launched)
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(10)
        kamailio.wait_for_bindings("1003", 0, 5)
    return results


def call_setup(kamailio: Kamailio, workdir: Path, runs: int) -> tuple[list[float], list[float]]:
    """Key press of `#` -> first INVITE at Kamailio, and that INVITE -> the 200 OK relayed."""
    far = Baresip(workdir, "1002", kamailio.users["1002"], kamailio)
    phone = PhoneUnderTest(
        phone_config_text(kamailio.port, "1001", kamailio.users["1001"], workdir=workdir)
    )
    to_invite, to_answer = [], []
    with far, phone:
        phone.wait_registered()
        for _ in range(runs):
            phone.lift()
            phone.wait_state(PhoneState.OFF_HOOK)
            phone.press("1002")
            pressed = time.time()
            phone.press("#")
            phone.wait_for(
                lambda v: v.call is not None and v.call.connected_at is not None, 10, "answer"
            )
            invites = [
                r for r in kamailio.requests("INVITE", from_user="1001") if r.time >= pressed
            ]
            answers = [
                r
                for r in kamailio.replies()
                if r.method == "INVITE" and r.code == 200 and r.call_id == invites[0].call_id
            ]
            to_invite.append(invites[0].time - pressed)
            to_answer.append(answers[0].time - invites[0].time)
            closed = len(far.events())
            phone.replace()
            far.wait_event(CALL_CLOSED, since=closed)
            phone.wait_state(PhoneState.IDLE, 5)
    return to_invite, to_answer


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="deskphone-bench-") as tmp:
        workdir = Path(tmp)
        with Kamailio(workdir / "kamailio") as kamailio:
            registered = start_to_registered(kamailio, workdir, args.runs)
            to_invite, to_answer = call_setup(kamailio, workdir, args.runs)
    figures = {
        "start -> registered": summary(registered, "s"),
        "key press -> INVITE on the wire": summary([t * 1000 for t in to_invite], "ms"),
        "INVITE -> 200 OK (baresip answers)": summary([t * 1000 for t in to_answer], "ms"),
    }
    print_table(figures)
    print(f"written to {write_results('call_timing', figures)}")


if __name__ == "__main__":
    main()
