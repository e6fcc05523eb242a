"""The rig itself: real Kamailio and baresips on 127.0.0.1 do what the phone's tests assume.

If these fail, no integration test of the phone can be trusted, so they check the peers the same
way the phone's tests will: bindings in usrloc, requests and replies in Kamailio's log, events from
baresip, and tones in its recordings.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.rig import RigError, wait_until
from tests.rig.baresip import CALL_CLOSED, CALL_ESTABLISHED
from tests.rig.fixtures import BaresipFactory, ToneWavFactory
from tests.rig.host import HostWatch, StalledAttempt, retried_over_stalls
from tests.rig.impair import in_new_namespace
from tests.rig.kamailio import Kamailio, SipReplyLog
from tests.rig.ports import free_port
from tests.rig.signals import has_tone, read_wav

pytestmark = pytest.mark.integration

A_TONE = 1000.0
B_TONE = 600.0


def codes_in_cseq_order(replies: list[SipReplyLog]) -> list[int]:
    """Status codes of one dialog's replies in the order of the requests they answer.

    Kamailio logs a reply it sends itself just after sending it, from whichever process took the
    request, so the next request's reply can be logged first; CSeq gives the true order.
    """
    return [r.code for r in sorted(replies, key=lambda r: int(r.cseq))]


def test_two_baresips_register(kamailio: Kamailio, baresip_factory: BaresipFactory) -> None:
    a = baresip_factory("1001")
    b = baresip_factory("1002", transport="tcp")

    [a_contact] = kamailio.wait_for_bindings("1001", 1, timeout=5)
    [b_contact] = kamailio.wait_for_bindings("1002", 1, timeout=5)
    assert f"@127.0.0.1:{a.sip_port}" in a_contact
    assert f"@127.0.0.1:{b.sip_port}" in b_contact and "transport=tcp" in b_contact
    assert kamailio.bindings("1003") == []

    # Digest auth: one challenged REGISTER and one accepted, per user.
    replies = kamailio.wait_for_replies("REGISTER", from_user="1001", code=200)
    assert codes_in_cseq_order(kamailio.replies("REGISTER", from_user="1001")) == [401, 200]
    assert replies[0].destination == f"127.0.0.1:{a.sip_port}"
    assert {r.transport for r in kamailio.requests("REGISTER", from_user="1002")} == {"tcp"}


def test_wrong_password_is_refused(kamailio: Kamailio, baresip_factory: BaresipFactory) -> None:
    with pytest.raises(RigError, match="registration refused"):
        baresip_factory("1003", password="not-the-password")

    kamailio.wait_for_replies("REGISTER", from_user="1003", code=403)
    assert kamailio.count("REGISTER", from_user="1003") == 2
    assert codes_in_cseq_order(kamailio.replies("REGISTER", from_user="1003")) == [401, 403]
    assert kamailio.bindings("1003") == []


def test_call_carries_audio_both_ways(
    kamailio: Kamailio, baresip_factory: BaresipFactory, tone_wav: ToneWavFactory
) -> None:
    a = baresip_factory("1001", audio_source=tone_wav(A_TONE))
    b = baresip_factory("1002", audio_source=tone_wav(B_TONE))

    a.dial(b.sip_uri)
    b.wait_event(CALL_ESTABLISHED, timeout=5)
    a.wait_event(CALL_ESTABLISHED, timeout=5)
    time.sleep(1.5)  # let 1.5 s of audio flow: the thing being measured, not a wait for state
    a.hangup()
    b.wait_event(CALL_CLOSED, timeout=5)
    a.wait_event(CALL_CLOSED, timeout=5)

    heard_by_b, rate_b = read_wav(b.last_received_wav())
    heard_by_a, rate_a = read_wav(a.last_received_wav())
    assert has_tone(heard_by_b, rate_b, A_TONE, min_ratio=0.7, min_seconds=0.8)
    assert not has_tone(heard_by_b, rate_b, B_TONE, min_ratio=0.3, min_seconds=0.2)
    assert has_tone(heard_by_a, rate_a, B_TONE, min_ratio=0.7, min_seconds=0.8)
    assert not has_tone(heard_by_a, rate_a, A_TONE, min_ratio=0.3, min_seconds=0.2)
    sent_by_a, rate = read_wav(a.last_sent_wav())
    assert has_tone(sent_by_a, rate, A_TONE, min_ratio=0.9, min_seconds=0.8)

    # The INVITE was authenticated and everything in the dialog went through Kamailio.
    assert kamailio.replies("INVITE", code=407) != []
    assert kamailio.count("INVITE", from_user="1001") == 2
    assert kamailio.count("ACK", from_user="1001") >= 1
    assert kamailio.count("BYE", from_user="1001") == 1
    # baresip ends the call as it sends the BYE, so the 200 may still be on its way.
    wait_until(lambda: kamailio.replies("BYE") != [], 5, "the reply to the BYE")
    assert [r.code for r in kamailio.replies("BYE")] == [200]


def test_codec_restriction(
    kamailio: Kamailio, baresip_factory: BaresipFactory, tone_wav: ToneWavFactory
) -> None:
    """codecs=["PCMU"] on one side makes the call narrowband (8 kHz recordings)."""
    a = baresip_factory("1001", audio_source=tone_wav(A_TONE), codecs=["PCMU"])
    b = baresip_factory("1002", audio_source=tone_wav(B_TONE))
    a.dial(b.sip_uri)
    b.wait_event(CALL_ESTABLISHED, timeout=5)
    time.sleep(1.0)
    b.hangup()
    a.wait_event(CALL_CLOSED, timeout=5)
    heard_by_b, rate = read_wav(b.last_received_wav())
    assert rate == 8000
    assert has_tone(heard_by_b, rate, A_TONE, min_ratio=0.7, min_seconds=0.5)
    assert "Set audio encoder: PCMU" in b.log_text()


def test_dtmf_rfc4733_reaches_far_end(kamailio: Kamailio, baresip_factory: BaresipFactory) -> None:
    a = baresip_factory("1001")
    b = baresip_factory("1002")
    a.dial(b.sip_uri)
    a.wait_event(CALL_ESTABLISHED, timeout=5)
    b.wait_event(CALL_ESTABLISHED, timeout=5)
    a.send_dtmf("1234*#", gap=0.15)
    assert b.wait_dtmf("1234*#", timeout=5) == "1234*#"
    # RFC 4733 goes in RTP: no INFO crossed Kamailio.
    assert kamailio.count("INFO") == 0


_SIPP_INFO_SCENARIO = """<?xml version="1.0" encoding="ISO-8859-1" ?>
<scenario name="call, two SIP INFO dtmf-relay digits, hang up">
  <send retrans="500"><![CDATA[
INVITE sip:[service]@[remote_ip]:[remote_port] SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
From: sipp <sip:sipp@[local_ip]:[local_port]>;tag=[pid]SIPpTag[call_number]
To: <sip:[service]@[remote_ip]:[remote_port]>
Call-ID: [call_id]
CSeq: 1 INVITE
Contact: <sip:sipp@[local_ip]:[local_port]>
Max-Forwards: 70
Content-Type: application/sdp
Content-Length: [len]

v=0
o=sipp 1 1 IN IP4 [local_ip]
s=-
c=IN IP4 [media_ip]
t=0 0
m=audio [media_port] RTP/AVP 0
a=rtpmap:0 PCMU/8000
]]></send>
  <recv response="100" optional="true"/>
  <recv response="180" optional="true"/>
  <recv response="200"/>
  <send><![CDATA[
ACK sip:[service]@[remote_ip]:[remote_port] SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
From: sipp <sip:sipp@[local_ip]:[local_port]>;tag=[pid]SIPpTag[call_number]
To: <sip:[service]@[remote_ip]:[remote_port]>[peer_tag_param]
Call-ID: [call_id]
CSeq: 1 ACK
Max-Forwards: 70
Content-Length: 0

]]></send>
  DIGITS
  <send retrans="500"><![CDATA[
BYE sip:[service]@[remote_ip]:[remote_port] SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
From: sipp <sip:sipp@[local_ip]:[local_port]>;tag=[pid]SIPpTag[call_number]
To: <sip:[service]@[remote_ip]:[remote_port]>[peer_tag_param]
Call-ID: [call_id]
CSeq: 9 BYE
Max-Forwards: 70
Content-Length: 0

]]></send>
  <recv response="200"/>
</scenario>
"""

_SIPP_INFO_DIGIT = """
  <send retrans="500"><![CDATA[
INFO sip:[service]@[remote_ip]:[remote_port] SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
From: sipp <sip:sipp@[local_ip]:[local_port]>;tag=[pid]SIPpTag[call_number]
To: <sip:[service]@[remote_ip]:[remote_port]>[peer_tag_param]
Call-ID: [call_id]
CSeq: CSEQ INFO
Max-Forwards: 70
Content-Type: application/dtmf-relay
Content-Length: [len]

Signal=DIGIT
Duration=160
]]></send>
  <recv response="200"/>
"""


@pytest.mark.skipif(shutil.which("sipp") is None, reason="sipp (sip-tester) not installed")
def test_dtmf_sip_info_reaches_far_end(
    kamailio: Kamailio, baresip_factory: BaresipFactory, tmp_path: Path
) -> None:
    """A peer sending SIP INFO application/dtmf-relay (sipp, calling b directly) is understood."""
    b = baresip_factory("1002")
    digits = "7*0#"
    steps = "".join(
        _SIPP_INFO_DIGIT.replace("CSEQ", str(i + 2)).replace("DIGIT", d)
        for i, d in enumerate(digits)
    )
    scenario = tmp_path / "info.xml"
    scenario.write_text(_SIPP_INFO_SCENARIO.replace("DIGITS", steps))
    with open(tmp_path / "sipp.out", "wb") as out:
        result = subprocess.run(
            ["sipp", "-sf", str(scenario), "-s", b.user, "-i", "127.0.0.1",
             "-p", str(free_port()), "-mp", str(free_port()), "-m", "1", "-timeout", "15",
             "-timeout_error", "-nostdin", f"127.0.0.1:{b.sip_port}"],
            cwd=tmp_path, stdout=out, stderr=subprocess.STDOUT, timeout=30, check=False,
        )  # fmt: skip
    assert result.returncode == 0, (tmp_path / "sipp.out").read_text(errors="replace")[-2000:]
    assert b.wait_dtmf(digits, timeout=5) == digits
    assert b.events(CALL_CLOSED)  # sipp hung up; b saw the whole call


def test_unknown_user_gets_404(kamailio: Kamailio, baresip_factory: BaresipFactory) -> None:
    a = baresip_factory("1001")
    a.dial(kamailio.aor("1005"))  # a real user, but not registered
    closed = a.wait_event(CALL_CLOSED, timeout=5)
    assert closed["param"].startswith("404")
    kamailio.wait_for_replies("INVITE", from_user="1001", code=404)
    assert codes_in_cseq_order(kamailio.replies("INVITE", from_user="1001")) == [407, 404]

    a.dial(kamailio.aor("4711"))  # no such user at all
    a.wait_event(CALL_CLOSED, timeout=5, predicate=lambda e: "4711" in e["peeruri"])
    kamailio.wait_for_replies("INVITE", from_user="1001", code=404, count=2)
    to_nobody = [r for r in kamailio.replies("INVITE", from_user="1001") if r.to_user == "4711"]
    assert codes_in_cseq_order(to_nobody) == [407, 404]


def test_request_policy(kamailio: Kamailio) -> None:
    """What Kamailio does with out-of-dialog requests, seen from a bare UDP socket."""
    stranger = "sip:probe@test.invalid"
    # Another domain is never forwarded (nothing may leave 127.0.0.1).
    assert _udp_request(kamailio, "OPTIONS", "sip:bob@example.invalid", stranger, "r1") == (
        "SIP/2.0 404 Domain Not Served"
    )
    # 127.0.0.1 with another port is some UA's contact, not this PBX.
    other = f"sip:1003@127.0.0.1:{free_port()}"
    assert _udp_request(kamailio, "OPTIONS", other, stranger, "r2").startswith("SIP/2.0 404 D")
    # Our domain with our port or none: a user lookup (1003 is not registered).
    for n, ruri in enumerate((kamailio.aor("1003"), "sip:1003@127.0.0.1")):
        assert _udp_request(kamailio, "OPTIONS", ruri, stranger, f"r3{n}") == (
            "SIP/2.0 404 Not Found"
        )
    # A keepalive to the server itself.
    assert _udp_request(kamailio, "OPTIONS", kamailio.uri, stranger, "r4") == "SIP/2.0 200 OK"
    # Our users must authenticate their requests.
    status = _udp_request(kamailio, "OPTIONS", kamailio.aor("1002"), kamailio.aor("1001"), "r5")
    assert status == "SIP/2.0 407 Proxy Authentication Required"

    logged = kamailio.requests("OPTIONS")
    assert [r.call_id for r in logged] == [
        f"{t}@127.0.0.1" for t in ("r1", "r2", "r30", "r31", "r4", "r5")
    ]
    assert logged[0].ruri == "sip:bob@example.invalid"
    assert logged[0].source.startswith("127.0.0.1:") and logged[0].transport == "udp"
    assert logged[-1].from_user == "1001" and logged[-1].to_user == "1002"
    assert kamailio.count("OPTIONS", from_user="1001") == 1


def test_kamailio_crash_and_restart_on_same_port(
    kamailio: Kamailio, baresip_factory: BaresipFactory
) -> None:
    # regint 3: baresip refreshes every ~2.7 s, so it finds the restarted registrar quickly.
    a = baresip_factory("1001", regint=3)
    b = baresip_factory("1002", regint=3, transport="tcp")
    kamailio.wait_for_bindings("1002", 1, timeout=5)
    port = kamailio.port

    kamailio.kill()
    assert not kamailio.running
    with pytest.raises(RigError):
        kamailio.bindings("1001")  # nobody answers on the control socket
    restarted_at = time.time()
    kamailio.restart()
    assert kamailio.port == port

    # usrloc is in memory, so the bindings come back only by re-registration.
    kamailio.wait_for_bindings("1001", 1, timeout=8)
    kamailio.wait_for_bindings("1002", 1, timeout=8)
    assert kamailio.requests("REGISTER", from_user="1001", since=restarted_at)

    # And calls work again through the new instance.
    a.dial(b.sip_uri)
    b.wait_event(CALL_ESTABLISHED, timeout=5)
    a.hangup()
    b.wait_event(CALL_CLOSED, timeout=5)


def _udp_request(kamailio: Kamailio, method: str, ruri: str, from_uri: str, tag: str) -> str:
    """Send one out-of-dialog request from a plain UDP socket; return the status line."""
    port = free_port()
    request = (
        f"{method} {ruri} SIP/2.0\r\n"
        f"Via: SIP/2.0/UDP 127.0.0.1:{port};branch=z9hG4bK-{tag};rport\r\n"
        f"From: <{from_uri}>;tag={tag}\r\n"
        f"To: <{ruri}>\r\n"
        f"Call-ID: {tag}@127.0.0.1\r\n"
        f"CSeq: 1 {method}\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
    )
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", port))
        sock.settimeout(5)
        sock.sendto(request.encode(), (kamailio.host, kamailio.port))
        return sock.recv(65536).decode(errors="replace").split("\r\n", 1)[0]


# Run in a namespace of its own (tests/rig/impair.py): 400 numbered RTP packets toward the
# "far end" port, three times (seeds 7, 7, 8), the second time with RTCP reports among them;
# which numbers arrive is what the dice left.
_IMPAIRED_RUN = """
import json, socket, sys, time
sys.path.insert(0, sys.argv[1])
from tests.rig.impair import Impairment

impairment = Impairment(far_end=range(10000, 10001)).start()
runs = []
try:
    for run, seed in enumerate((7, 7, 8)):
        impairment.set(loss=0.3, delay_ms=2, jitter_ms=1, seed=seed)
        inbox = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        inbox.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)  # all 400, unread
        inbox.bind(("127.0.0.1", 10000))
        inbox.settimeout(0.5)
        out = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        for number in range(400):
            out.sendto(b"\\x80\\x00" + number.to_bytes(2, "big"), ("127.0.0.1", 10000))
            if run == 1 and number % 23 == 0:
                out.sendto(b"\\x81\\xc8\\x00\\x01", ("127.0.0.1", 10000))  # a sender report
            time.sleep(0.0005)
        got = set()
        try:
            while True:
                packet = inbox.recv(16)
                if packet[1] != 0xC8:
                    got.add(int.from_bytes(packet[2:], "big"))
        except socket.timeout:
            pass
        inbox.close()
        out.close()
        runs.append(sorted(got))
finally:
    impairment.close()
with open(sys.argv[2], "w") as results:
    json.dump(runs, results)
"""


@pytest.mark.skipif(shutil.which("iptables") is None, reason="needs iptables (bootstrap.sh)")
def test_the_impairment_loses_the_same_packets_for_the_same_seed(tmp_path: Path) -> None:
    """The audio benchmark compares two phones on one network: with one seed the same
    packets go (about the share asked for), RTCP among them or not, and another seed draws
    other ones."""
    if os.geteuid() != 0:
        pytest.skip("network namespaces need root")
    results = tmp_path / "arrived.json"
    repo = Path(__file__).resolve().parents[2]
    code = in_new_namespace([sys.executable, "-c", _IMPAIRED_RUN, str(repo), str(results)])
    assert code == 0 and results.exists(), f"the impaired run failed (exit {code})"
    first, again, other = json.loads(results.read_text())
    for arrived in (first, other):
        assert 400 * 0.55 <= len(arrived) <= 400 * 0.85, f"{400 - len(arrived)} of 400 lost"
    assert first == again, "one seed dropped different packets in two runs"
    assert first != other, "two seeds dropped the same packets"


# -- the machine's stall witness ------------------------------------------------------------


def _stand_still(watch: HostWatch, seconds: float) -> None:
    """Stop every witness process for `seconds`: to the witness, what a stalled processor is."""
    pids = watch.pids
    for pid in pids:
        os.kill(pid, signal.SIGSTOP)
    time.sleep(seconds)
    for pid in pids:
        os.kill(pid, signal.SIGCONT)


@pytest.fixture
def witness() -> Iterator[HostWatch]:
    watch = HostWatch().start()
    if watch.refused:
        pytest.skip(f"the witness needs real-time priority here: {watch.refused}")
    try:
        yield watch
    finally:
        watch.stop()


def test_the_witness_sees_a_processor_stand_still(witness: HostWatch) -> None:
    began = time.monotonic()
    time.sleep(0.5)
    assert witness.stalls(began) == [], "a quiet half second was taken for a stall"
    stopped = time.monotonic()
    _stand_still(witness, 0.3)
    [stall, *_] = wait_until(lambda: witness.stalls(stopped), 2.0, "the witness to report")
    assert 250 <= stall.ms <= 1000, stall
    assert stopped - 0.05 <= stall.began <= stopped + 0.3, (stall, stopped)
    assert witness.stalls(began, stopped - 0.05) == [], "a stall placed before it began"


def test_an_attempt_is_tried_again_only_when_the_machine_stalled(witness: HostWatch) -> None:
    tried: list[int] = []

    def spoiled_once(attempt: int) -> None:
        tried.append(attempt)
        if attempt == 1:
            _stand_still(witness, 0.2)
            time.sleep(0.1)  # the witness reports a stall as it ends
            raise AssertionError("PESQ 1.25 < 2.4")

    with pytest.warns(StalledAttempt, match="attempt 1 failed while processor"):
        excused = retried_over_stalls(witness, spoiled_once)
    assert tried == [1, 2]
    [note] = excused
    assert "attempt 1 failed while processor" in note and "PESQ 1.25" in note, note

    tried.clear()

    def broken(attempt: int) -> None:
        tried.append(attempt)
        raise AssertionError("PESQ 1.25 < 2.4")

    with pytest.raises(AssertionError, match=r"PESQ 1\.25"):
        retried_over_stalls(witness, broken)
    assert tried == [1], "a failure on a steady machine was tried again"

    tried.clear()

    def always_spoiled(attempt: int) -> None:
        tried.append(attempt)
        _stand_still(witness, 0.2)
        time.sleep(0.1)
        raise AssertionError("PESQ 1.25 < 2.4")

    with pytest.raises(AssertionError) as failure, pytest.warns(StalledAttempt):
        retried_over_stalls(witness, always_spoiled, tries=2)
    assert tried == [1, 2], "stalls excused the test itself"
    notes = "\n".join(failure.value.__notes__)
    assert "before this, attempt 1 failed while processor" in notes, notes
    assert "in this attempt too: processor" in notes, notes
