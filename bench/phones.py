"""deskphone against baresip on the same work, in one run: start -> registered, call setup
(dial -> INVITE on the wire -> 200 OK -> first RTP packet out), idle and in-call CPU read from
/proc, resident memory idle and in a call. Both phones register with the same Kamailio, call
the same baresip far end (auto-answer) and use the same codec.

    python -m bench.phones [--runs N]
"""

from __future__ import annotations

import argparse
import signal
import subprocess
import sys
import tempfile
import time
from functools import partial
from pathlib import Path

from bench.common import Figure, cpu_seconds, figure, markdown_table, memory_mb
from bench.wire import LoopbackCapture
from tests.harness import phone_config_text
from tests.rig import wait_until
from tests.rig.baresip import CALL_CLOSED, CALL_ESTABLISHED, Baresip
from tests.rig.kamailio import Kamailio
from tests.rig.signals import write_tone_wav

OURS, THEIRS, FAR = "1001", "1003", "1002"
OUR_RTP = range(4000, 4200)  # pjsua's default media port base
THEIR_RTP = range(40000, 40100)
FAR_RTP = range(41000, 41100)
WINDOWS = {"idle": 60.0, "call": 30.0}  # seconds measured; --quick shortens them
SETTLE = 3.0
CODECS = ("G722", "PCMU")


class OurPhone:
    """The deskphone, in a process of its own (bench.driver), driven over stdin."""

    def __init__(self, kamailio: Kamailio, workdir: Path, codec: str) -> None:
        workdir.mkdir(parents=True, exist_ok=True)
        self.config = workdir / "deskphone.toml"
        self.config.write_text(
            phone_config_text(
                kamailio.port,
                OURS,
                kamailio.users[OURS],
                workdir=workdir,
                microphone=write_tone_wav(workdir / "mic.wav", 1000.0, 5.0),
                codecs=(codec,),
            ).replace('log_level = "debug"', 'log_level = "warning"')
        )
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "bench.driver", str(self.config)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.proc.stdout is not None
        if self.proc.stdout.readline().strip() != "ready":
            raise RuntimeError("the deskphone driver did not start")

    @property
    def pid(self) -> int:
        return self.proc.pid

    def command(self, line: str) -> None:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()
        answer = self.proc.stdout.readline().strip()
        if answer != "ok":
            raise RuntimeError(f"{line}: {answer}")

    def dial(self, user: str) -> None:
        self.command(f"dial {user}")

    def hangup(self) -> None:
        self.command("hangup")

    def stop(self) -> None:
        """End of input shuts the driver down as SIGTERM would: hang up, un-REGISTER."""
        if self.proc.poll() is None:
            assert self.proc.stdin is not None
            self.proc.stdin.close()
            self.proc.wait(10)


class TheirPhone:
    """baresip as the peer under comparison, registered to the same Kamailio."""

    def __init__(self, kamailio: Kamailio, workdir: Path, codec: str) -> None:
        workdir.mkdir(parents=True, exist_ok=True)
        self.ua = Baresip(
            workdir,
            THEIRS,
            kamailio.users[THEIRS],
            kamailio,
            audio_source=write_tone_wav(workdir / "their-mic.wav", 1000.0, 600.0),
            codecs=[codec],
            rtp_ports=THEIR_RTP,
        )
        self.ua.start()
        self.aor = kamailio.aor

    @property
    def pid(self) -> int:
        assert self.ua._proc is not None  # the rig keeps the process
        return self.ua._proc.pid

    def dial(self, user: str) -> None:
        self.ua.dial(self.aor(user))

    def hangup(self) -> None:
        self.ua.hangup()

    def stop(self) -> None:
        self.ua.stop()


def start_to_registered(kamailio: Kamailio, workdir: Path, runs: int) -> Figure:
    """Launch -> Kamailio's 200 OK to the first REGISTER: `deskphone run` against baresip."""
    config = workdir / "daemon.toml"
    config.write_text(
        phone_config_text(kamailio.port, OURS, kamailio.users[OURS], workdir=workdir).replace(
            '"debug"', '"warning"'
        )
    )

    def ours() -> float:
        launched = time.time()
        proc = subprocess.Popen(
            [sys.executable, "-m", "deskphone", "run", "--config", str(config)],
            stderr=subprocess.DEVNULL,
        )
        try:
            return _registered_at(kamailio, OURS, launched) - launched
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(10)
            kamailio.wait_for_bindings(OURS, 0, 5)

    def theirs() -> float:
        launched = time.time()
        ua = Baresip(workdir, THEIRS, kamailio.users[THEIRS], kamailio)
        ua.start()
        try:
            return _registered_at(kamailio, THEIRS, launched) - launched
        finally:
            ua.stop()
            kamailio.wait_for_bindings(THEIRS, 0, 5)

    return figure(
        "start -> registered",
        "s",
        [ours() for _ in range(runs)],
        [theirs() for _ in range(runs)],
        limit=1.5,
    )


def _registered_at(kamailio: Kamailio, user: str, after: float) -> float:
    kamailio.wait_for_bindings(user, 1, 15)
    return kamailio.replies("REGISTER", from_user=user, code=200, since=after)[0].time


def idle(kamailio: Kamailio, workdir: Path, runs: int) -> list[Figure]:
    """CPU seconds per minute and resident memory of both phones registered and idle."""
    our = OurPhone(kamailio, workdir / "idle-ours", CODECS[0])
    their = TheirPhone(kamailio, workdir / "idle-theirs", CODECS[0])
    cpu: dict[str, list[float]] = {"ours": [], "theirs": []}
    rss: dict[str, list[float]] = {"ours": [], "theirs": []}
    peak: dict[str, list[float]] = {"ours": [], "theirs": []}
    try:
        kamailio.wait_for_bindings(OURS, 1, 10)
        time.sleep(SETTLE)
        for _ in range(runs):
            before = {"ours": cpu_seconds(our.pid), "theirs": cpu_seconds(their.pid)}
            time.sleep(WINDOWS["idle"])
            for side, pid in (("ours", our.pid), ("theirs", their.pid)):
                cpu[side].append((cpu_seconds(pid) - before[side]) * 60.0 / WINDOWS["idle"])
                now, high = memory_mb(pid)
                rss[side].append(now)
                peak[side].append(high)
    finally:
        our.stop()
        their.stop()
    return [
        figure("idle CPU", "CPU-s/min", cpu["ours"], cpu["theirs"], limit=0.06),
        figure("resident memory idle, steady", "MB", rss["ours"], rss["theirs"], limit=50),
        figure("resident memory idle, peak", "MB", peak["ours"], peak["theirs"], limit=50),
    ]


def calls(kamailio: Kamailio, workdir: Path, runs: int) -> list[Figure]:
    """Call setup timings, in-call CPU per call-minute and in-call memory, per codec."""
    far = Baresip(
        workdir,
        FAR,
        kamailio.users[FAR],
        kamailio,
        audio_source=write_tone_wav(workdir / "far-mic.wav", 600.0, 3600.0),
        rtp_ports=FAR_RTP,
    )
    far.start()
    rows: list[Figure] = []
    setup: dict[str, dict[str, list[float]]] = {}
    try:
        with LoopbackCapture(OUR_RTP, THEIR_RTP) as capture:
            for codec in CODECS:
                measured = {
                    side: _call_runs(
                        make(kamailio, workdir / f"{side}-{codec}", codec),
                        user,
                        ports,
                        kamailio,
                        far,
                        capture,
                        runs,
                    )
                    for side, make, user, ports in (
                        ("ours", OurPhone, OURS, OUR_RTP),
                        ("theirs", TheirPhone, THEIRS, THEIR_RTP),
                    )
                }
                rows += [
                    figure(
                        f"in-call CPU, {codec}",
                        "CPU-s/call-min",
                        measured["ours"]["cpu"],
                        measured["theirs"]["cpu"],
                        ratio_limit=1.5,
                    ),
                    figure(
                        f"resident memory in a {codec} call, steady",
                        "MB",
                        measured["ours"]["rss"],
                        measured["theirs"]["rss"],
                        limit=50,
                    ),
                    figure(
                        f"resident memory in a {codec} call, peak",
                        "MB",
                        measured["ours"]["peak"],
                        measured["theirs"]["peak"],
                        limit=50,
                    ),
                ]
                for side in measured:
                    for key in (
                        "dial->INVITE",
                        "INVITE->200 OK",
                        "200 OK->first RTP",
                        "dial->first RTP",
                    ):
                        setup.setdefault(key, {}).setdefault(side, []).extend(measured[side][key])
    finally:
        far.stop()
    return [
        figure(
            f"call setup: {key}",
            "ms",
            [v * 1000 for v in sides["ours"]],
            [v * 1000 for v in sides["theirs"]],
        )
        for key, sides in setup.items()
    ] + rows


def _call_runs(
    phone: OurPhone | TheirPhone,
    user: str,
    ports: range,
    kamailio: Kamailio,
    far: Baresip,
    capture: LoopbackCapture,
    runs: int,
) -> dict[str, list[float]]:
    results: dict[str, list[float]] = {}

    def note(key: str, value: float) -> None:
        results.setdefault(key, []).append(value)

    try:
        kamailio.wait_for_bindings(user, 1, 10)
        time.sleep(SETTLE)
        for _ in range(runs):
            events = len(far.events())
            dialled = time.time()
            phone.dial(FAR)
            far.wait_event(CALL_ESTABLISHED, since=events)
            invite = wait_until(
                partial(kamailio.requests, "INVITE", from_user=user, since=dialled),
                5.0,
                "the INVITE at Kamailio",
            )[0]
            answer = wait_until(
                partial(kamailio.replies, "INVITE", code=200, call_id=invite.call_id),
                5.0,
                "its 200 OK at Kamailio",
            )[0]
            rtp = capture.wait_first(ports, dialled)
            note("dial->INVITE", invite.time - dialled)
            note("INVITE->200 OK", answer.time - invite.time)
            note("200 OK->first RTP", rtp.time - answer.time)
            note("dial->first RTP", rtp.time - dialled)
            time.sleep(SETTLE)
            before = cpu_seconds(phone.pid)
            time.sleep(WINDOWS["call"])
            note("cpu", (cpu_seconds(phone.pid) - before) * 60.0 / WINDOWS["call"])
            now, high = memory_mb(phone.pid)
            note("rss", now)
            note("peak", high)
            events = len(far.events())
            phone.hangup()
            far.wait_event(CALL_CLOSED, since=events)
            time.sleep(1.0)
    finally:
        phone.stop()
    return results


def run(runs: int, workdir: Path, quick: bool = False) -> list[Figure]:
    if quick:
        WINDOWS.update(idle=10.0, call=5.0)
    with Kamailio(workdir / "kamailio") as kamailio:
        return [
            start_to_registered(kamailio, workdir, runs),
            *idle(kamailio, workdir, runs),
            *calls(kamailio, workdir, runs),
        ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="short windows, to try it out")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="deskphone-bench-") as tmp:
        print(markdown_table(run(args.runs, Path(tmp), args.quick)))


if __name__ == "__main__":
    main()
