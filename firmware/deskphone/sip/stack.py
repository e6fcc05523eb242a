"""The pjsua2 endpoint: lifecycle, transports, codecs, the event pump, and every object made
from it.

Threading: pjsua2 runs with no worker threads of its own. One thread of ours ("sip-events")
blocks in `libHandleEvents`, which waits in select() until a packet or a pjsip timer is due, so
an idle phone wakes only for its own SIP timers. Callbacks run there (or inside a pjsua2 call
made by the loop) and only post events to the asyncio loop. The loop makes every pjsua2 call
(the binding releases the GIL inside them), then pokes the pump so that timers the call
scheduled are taken into its next wait.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import os
import socket
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pjsua2 as pj

from deskphone import USER_AGENT
from deskphone.core.effects import (
    Answer,
    ConnectAudio,
    DisconnectAudio,
    DtmfMethod,
    Effect,
    Hangup,
    JoinCalls,
    MakeCall,
    PlayTone,
    Register,
    SendDtmf,
    SetHold,
    SetMute,
    SetRoute,
    SetVolume,
    StopTone,
    Transfer,
)
from deskphone.core.events import (
    CallId,
    CallIncoming,
    CallState,
    CallStateChanged,
    Event,
    RegistrationChanged,
    RegState,
)
from deskphone.errors import SipError
from deskphone.sip.account import PhoneAccount
from deskphone.sip.call import PhoneCall
from deskphone.sip.media import JB_DISCARD_STATIC, MediaRouter, set_jitter_discard
from deskphone.sip.uri import parse_peer, server_uri, target_uri

if TYPE_CHECKING:
    from deskphone.audio.devices import SoundDevices
    from deskphone.audio.stream import BufferStats
    from deskphone.config import AccountConfig, Config

log = logging.getLogger(__name__)
pjsip_log = logging.getLogger("deskphone.pjsip")

CLOCK_RATE = 16000  # wideband end to end, for G.722
BRIDGE_FRAME_MS = 20  # the conference bridge's tick
PUMP_WAIT_MS = 1000  # the pump's longest sleep; pjsip timers and packets wake it sooner
WAKE_DATAGRAM = b"\r\n\r\n"  # a SIP keep-alive: pjsip accepts and ignores it
DTMF_DURATION_MS = 160
SHUTDOWN_POLL = 0.02
PJSIP_EBUSY = 171001  # pjsip's "object is busy": a REGISTER of this account is in flight
# pjsua refuses a re-INVITE while an offer is out (pjlib's "invalid operation") and before
# an answered call's ACK ("invalid INVITE session state"): a hold or resume then waits.
OFFER_NOT_YET = frozenset({70013, 171141})  # PJ_EINVALIDOP, PJSIP_ESESSIONSTATE

# Config codec names -> pjsua2 codec id prefixes (every clock rate of speex).
CODEC_IDS = {
    "G722": ("G722/16000",),
    "PCMA": ("PCMA/8000",),
    "PCMU": ("PCMU/8000",),
    "speex": ("speex/",),
    "GSM": ("GSM/8000",),
    "iLBC": ("iLBC/8000",),
}
_TRANSPORT_TYPES = {
    "udp": pj.PJSIP_TRANSPORT_UDP,
    "tcp": pj.PJSIP_TRANSPORT_TCP,
    "tls": pj.PJSIP_TRANSPORT_TLS,
}
_PJ_LOG_LEVELS = {"debug": 5, "info": 3, "warning": 2, "error": 1}


def _python_level(pj_level: int) -> int:
    if pj_level <= 1:
        return logging.ERROR
    if pj_level == 2:
        return logging.WARNING
    if pj_level == 3:
        return logging.INFO
    return logging.DEBUG


class _LogWriter(pj.LogWriter):  # type: ignore[misc]
    """pjsip's log into Python logging (and from there into the journal)."""

    def __init__(self) -> None:
        super().__init__()
        self._refusal_expected = threading.local()

    @contextlib.contextmanager
    def refusal_expected(self) -> Iterator[None]:
        """pjsua logs a refused operation as an error, then raises it. Where this thread's
        caller expects the refusal and handles it, those lines are debug; a refusal it does
        not expect it logs itself, with pjsua's reason."""
        self._refusal_expected.on = True
        try:
            yield
        finally:
            self._refusal_expected.on = False

    def write(self, entry: pj.LogEntry) -> None:
        level = _python_level(int(entry.level))
        if getattr(self._refusal_expected, "on", False):
            level = logging.DEBUG
        pjsip_log.log(level, "%s", str(entry.msg).rstrip())


@contextlib.contextmanager
def _stdout_silenced() -> Iterator[None]:
    """pjlib prints to stdout at `libCreate`, before any log config can apply."""
    sys.stdout.flush()
    saved = os.dup(1)
    try:
        with open(os.devnull, "wb") as devnull:
            os.dup2(devnull.fileno(), 1)
        yield
    finally:
        os.dup2(saved, 1)
        os.close(saved)


def _error_text(err: Exception) -> str:
    if isinstance(err, pj.Error):
        return f"{err.reason} (status {err.status})"
    return str(err)


class SipStack:
    """The only owner of pjsua2 objects: accounts, calls and media live and die with it."""

    def __init__(
        self,
        config: Config,
        loop: asyncio.AbstractEventLoop,
        dispatch: Callable[[Event], None],
        sound: SoundDevices | None = None,
    ) -> None:
        self._config = config
        self._loop = loop
        self._dispatch = dispatch
        self._sound = sound  # the handset's sound devices ([audio] backend "alsa")
        self._endpoint: pj.Endpoint | None = None
        self._log_writer = _LogWriter()
        self._transports: dict[str, int] = {}
        self._accounts: list[PhoneAccount | None] = []
        self._calls: dict[CallId, PhoneCall] = {}
        self._calls_lock = threading.Lock()
        self._incoming_ids = itertools.count(1)
        self._media: MediaRouter | None = None
        self._pump: threading.Thread | None = None
        self._pump_stop = threading.Event()
        self._wake_socket: socket.socket | None = None
        self._wake_address: tuple[str, int] | None = None

    # -- lifecycle -------------------------------------------------------------------------

    def start(self) -> None:
        """Create and start the endpoint. Call from the loop's thread; raises `SipError`."""
        try:
            self._start()
        except pj.Error as err:
            self._destroy_endpoint()
            raise SipError(f"SIP stack failed to start: {_error_text(err)}") from err

    def _start(self) -> None:
        endpoint = pj.Endpoint()
        with _stdout_silenced():
            endpoint.libCreate()
        self._endpoint = endpoint
        endpoint.libInit(self._endpoint_config())
        self._create_transports(endpoint)
        self._set_codec_order(endpoint)
        endpoint.libStart()
        self._media = MediaRouter(
            endpoint,
            self._config.audio,
            CLOCK_RATE,
            sound=self._sound,
            frame_ms=BRIDGE_FRAME_MS,
            schedule=self._loop.call_later,
        )
        self._media.start()
        self._pump_stop.clear()
        self._pump = threading.Thread(target=self._run_pump, name="sip-events", daemon=True)
        self._pump.start()
        for index, account in enumerate(self._config.accounts):
            self._accounts.append(self._create_account(index, account) if account.enabled else None)
        log.info("SIP stack up: %s, transports %s", USER_AGENT, ", ".join(self._transports))

    async def shutdown(self, timeout: float = 2.0) -> None:
        """End calls, unregister and wait for the answers (bounded by `timeout`), release every
        pjsua2 object, then destroy the library."""
        if self._endpoint is None:
            return
        deadline = time.monotonic() + timeout
        self._hang_up_all()
        self._wake_pump()
        await asyncio.gather(
            *(self._unregister(a, deadline) for a in self._accounts if a is not None),
            self._wait_until(lambda: not self._live_calls(), deadline),
        )
        if self._media is not None:
            self._media.close()
            self._media = None
        self._delete_accounts()
        with self._calls_lock:
            self._calls.clear()
        await self._stop_pump()
        self._destroy_endpoint()

    async def _unregister(self, account: PhoneAccount, deadline: float) -> None:
        """Let a REGISTER in flight finish (pjsua refuses a second one meanwhile), then remove
        a live binding and wait for the registrar's answer, so none is left behind."""
        while time.monotonic() < deadline:
            if account.awaiting_reply:
                await asyncio.sleep(SHUTDOWN_POLL)
                continue
            if not account.registered:
                return
            account.awaiting_reply = True
            try:
                account.setRegistration(False)
            except pj.Error as err:
                account.awaiting_reply = False
                if err.status != PJSIP_EBUSY:
                    log.warning(
                        "account %d: cannot unregister: %s", account.index, _error_text(err)
                    )
                    return
                await asyncio.sleep(SHUTDOWN_POLL)  # a refresh of pjsua's own is in flight
            self._wake_pump()

    async def _wait_until(self, done: Callable[[], bool], deadline: float) -> None:
        while not done() and time.monotonic() < deadline:
            await asyncio.sleep(SHUTDOWN_POLL)

    async def _stop_pump(self) -> None:
        self._pump_stop.set()
        self._wake_pump()
        if self._pump is not None:
            await self._loop.run_in_executor(None, self._pump.join, 2 * PUMP_WAIT_MS / 1000)
            self._pump = None

    def _destroy_endpoint(self) -> None:
        endpoint, self._endpoint = self._endpoint, None
        if endpoint is None:
            return
        # We unregistered ourselves and waited; skip pjsua's own one-second grace period.
        endpoint.libDestroy(pj.PJSUA_DESTROY_NO_RX_MSG)
        if self._wake_socket is not None:
            self._wake_socket.close()
            self._wake_socket = None
        log.info("SIP stack destroyed")

    # -- set-up ----------------------------------------------------------------------------

    def _endpoint_config(self) -> pj.EpConfig:
        config = pj.EpConfig()
        ua = config.uaConfig
        ua.threadCnt = 0
        ua.mainThreadOnly = False
        ua.userAgent = USER_AGENT
        ua.maxCalls = 4
        level = _PJ_LOG_LEVELS[self._config.phone.log_level]
        config.logConfig.writer = self._log_writer
        config.logConfig.level = level
        config.logConfig.consoleLevel = level
        config.logConfig.msgLogging = level >= 5
        config.logConfig.decor = pj.PJ_LOG_HAS_SENDER
        media = config.medConfig
        media.clockRate = CLOCK_RATE
        media.sndClockRate = CLOCK_RATE
        media.channelCount = 1
        # The bridge ticks every 20 ms, as RTP's packets. A 10 ms tick, tried again with the
        # drift buffers' present control (and a 20 ms jitter floor), took the earpiece's
        # latency from 52 to 44 ms, but with 40 +- 10 ms of jitter the jitter buffer, read
        # every 10 ms, kept running dry: earpiece PESQ 1.9-3.3 where a 20 ms tick scored
        # 3.8-4.3 (bench/audio.py).
        media.audioFramePtime = BRIDGE_FRAME_MS
        media.ptime = 20
        media.noVad = True  # a desk phone sends steady RTP; comfort noise brings nothing here
        # pjsua's echo canceller sits on its own sound-device port, here the null device that
        # clocks the bridge; the handset's audio enters through a port of ours and never
        # passes it, so a tail would only cost CPU. See README, "Handset audio".
        media.ecTailLen = 0
        # Jitter buffer (ms): adaptive, from a floor of one packet, with pjmedia's static
        # discard. On a good path (a desk phone's LAN) it can stay at one packet, 10 ms sooner
        # than at two (bench/audio.py; on the shared test machine a packet delayed by the host
        # itself lifts some clean calls to two). A late packet raises it: played a slot late,
        # it leaves the packets behind it waiting; 500 ms at most. Static discard gives a frame
        # back only once the buffer holds twice the bursts it has seen, one per 200 ms:
        # pjmedia's default, progressive discard, shrank it as soon as a burst had passed, so
        # at a one-packet floor it ran dry, discarded and regrew all call long under jitter.
        # Once dry (a packet lost or late), it plays again as soon as one packet is in
        # (jbMaxPre, the most it waits for): left to itself pjmedia waits for as many as the
        # largest burst it has seen, two or three under 40 +- 10 ms of jitter, so every loss
        # added 20-40 ms of made-up sound and a later discard took it away again, two time
        # warps a lost packet (10 % loss: earpiece PESQ 1.35-1.50 in three calls, 1.58-1.96
        # with this). It starts at its floor: started higher (60 ms over 40), the surplus frame
        # was later discarded in the middle of speech, which alone cost a clean call 0.5-1.0
        # PESQ. See README, "Handset audio".
        media.jbInit = 20
        media.jbMinPre = 20
        media.jbMaxPre = 20
        set_jitter_discard(media, JB_DISCARD_STATIC)
        media.jbMax = 500
        media.hasIoqueue = False  # RTP shares the SIP ioqueue, so one pump serves both
        media.threadCnt = 0
        return config

    def _create_transports(self, endpoint: pj.Endpoint) -> None:
        wanted = {"udp"} | {a.transport for a in self._config.accounts if a.enabled}
        bind = self._config.phone.bind_address
        for name in ("udp", "tcp", "tls"):
            if name not in wanted:
                continue
            transport_config = pj.TransportConfig()
            transport_config.port = self._config.phone.sip_port
            if bind:
                transport_config.boundAddress = bind
            try:
                self._transports[name] = endpoint.transportCreate(
                    _TRANSPORT_TYPES[name], transport_config
                )
            except pj.Error as err:
                raise SipError(
                    f"cannot open SIP {name.upper()} port {self._config.phone.sip_port}"
                    f"{' on ' + bind if bind else ''}: {_error_text(err)}"
                ) from err
        info = endpoint.transportGetInfo(self._transports["udp"])
        port = int(str(info.localName).rsplit(":", 1)[1])
        self._wake_address = (bind if bind and bind != "0.0.0.0" else "127.0.0.1", port)
        self._wake_socket = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)

    @property
    def sip_port(self) -> int:
        """The local SIP port (useful when the config asked for any free port)."""
        if self._wake_address is None:
            raise SipError("SIP stack not started")
        return self._wake_address[1]

    @property
    def audio_buffer_stats(self) -> dict[str, BufferStats]:
        """How the sound card's drift buffers fare (alsa backend), by direction."""
        return self._media.buffer_stats if self._media is not None else {}

    @property
    def last_recording(self) -> Path | None:
        """The newest earpiece recording of the files backend, if any."""
        return self._media.last_recording if self._media is not None else None

    def _set_codec_order(self, endpoint: pj.Endpoint) -> None:
        codec_ids = [str(info.codecId) for info in endpoint.codecEnum2()]
        for codec_id in codec_ids:
            endpoint.codecSetPriority(codec_id, 0)
        priority = 255
        for name in self._config.audio.codecs:
            for prefix in CODEC_IDS[name]:
                for codec_id in codec_ids:
                    if codec_id.startswith(prefix):
                        endpoint.codecSetPriority(codec_id, priority)
                        priority -= 1

    def _create_account(self, index: int, account: AccountConfig) -> PhoneAccount:
        config = pj.AccountConfig()
        aor = f"sip:{account.user}@{account.registrar_host}"
        config.idUri = f'"{account.display_name}" <{aor}>' if account.display_name else aor
        reg = config.regConfig
        reg.registrarUri = server_uri(
            account.registrar_scheme,
            account.registrar_host,
            account.registrar_port,
            account.transport,
        )
        reg.registerOnAdd = False  # the core decides when, and retries with its own backoff
        reg.timeoutSec = account.expiry
        reg.retryIntervalSec = 0
        reg.firstRetryIntervalSec = 0
        reg.dropCallsOnFail = False
        password = account.password.reveal() if account.password is not None else ""
        if password:
            config.sipConfig.authCreds.append(
                pj.AuthCredInfo("digest", "*", account.auth_user, 0, password)
            )
        if account.outbound_proxy:
            config.sipConfig.proxies.append(_loose_route(account.outbound_proxy.uri))
        config.sipConfig.transportId = self._transports[account.transport]
        config.mwiConfig.enabled = account.mwi
        # pjsua would follow a multi-codec answer with a re-INVITE naming one codec; peers use
        # the first anyway, and the extra round trip delays every call.
        config.mediaConfig.lockCodecEnabled = False
        if self._config.phone.bind_address:
            config.mediaConfig.transportConfig.boundAddress = self._config.phone.bind_address
        phone_account = PhoneAccount(self, index)
        phone_account.create(config)
        return phone_account

    def replace_accounts(self, config: Config) -> None:
        """Swap in the accounts of a reloaded config while no call is up (`SipError` if one is,
        or if they need a transport the stack did not open). Deleting an account un-REGISTERs
        it; the new ones register when the core says so."""
        if self._live_calls():
            raise SipError("accounts cannot change during a call")
        missing = {a.transport for a in config.accounts if a.enabled} - set(self._transports)
        if missing:
            raise SipError(f"the {', '.join(sorted(missing))} transport opens only at a restart")
        self._delete_accounts()
        self._config = config
        for index, settings in enumerate(config.accounts):
            self._accounts.append(
                self._create_account(index, settings) if settings.enabled else None
            )
        self._wake_pump()

    def _hang_up_all(self) -> None:
        """Hang up every call. A method of its own so no local keeps a call object alive past
        `libDestroy` (freed later, a pjsua2 Call asserts on its stale id and aborts)."""
        for call in self._live_calls():
            self._hang_up(call, 0)

    def _delete_accounts(self) -> None:
        """Delete every account, and let go of the objects before returning: pjsua reuses the
        ids, and a pjsua2 Account freed later would delete whichever account then has its id."""
        for account in self._accounts:
            if account is not None:
                account.shutdown()
        self._accounts.clear()

    @property
    def calls_active(self) -> bool:
        """The stack still holds a call (its last events may trail the phone's own)."""
        return bool(self._live_calls())

    @property
    def healthy(self) -> bool:
        """False when the stack runs but its event thread died (the watchdog then stops)."""
        return self._endpoint is None or (self._pump is not None and self._pump.is_alive())

    # -- effects ---------------------------------------------------------------------------

    def effect_handlers(self) -> dict[type[Effect], Callable[[Any], None]]:
        """The effects this adapter carries out, for the app's dispatcher."""
        return {
            Register: self._register,
            MakeCall: self._make_call,
            Answer: self._answer,
            Hangup: lambda e: self._with_call(e.call, lambda c: self._hang_up(c, e.code)),
            SendDtmf: self._send_dtmf,
            SetHold: self._set_hold,
            Transfer: self._transfer,
            ConnectAudio: self._connect_audio,
            DisconnectAudio: self._disconnect_audio,
            JoinCalls: lambda e: self._media_do(lambda m: m.join_calls(e.first, e.second)),
            SetMute: lambda e: self._media_do(lambda m: m.set_mute(e.muted)),
            PlayTone: lambda e: self._media_do(lambda m: m.play_tone(e.tone, e.output)),
            StopTone: lambda e: self._media_do(lambda m: m.stop_tone(e.output)),
            SetVolume: lambda e: self._media_do(lambda m: m.set_volume(e.output, e.level)),
            SetRoute: lambda e: self._media_do(lambda m: m.set_route(e.output)),
        }

    def _register(self, effect: Register) -> None:
        account = self._accounts[effect.account]
        if account is None:
            return
        account.awaiting_reply = True
        try:
            account.setRegistration(True)
        except pj.Error as err:
            account.awaiting_reply = False
            log.error("account %d: cannot register: %s", effect.account, _error_text(err))
            self.post(RegistrationChanged(effect.account, RegState.FAILED, 503, str(err.reason)))
        self._wake_pump()

    def _make_call(self, effect: MakeCall) -> None:
        account = self._accounts[effect.account]
        settings = self._config.accounts[effect.account]
        uri = target_uri(
            effect.target, settings.registrar_host, settings.registrar_port, settings.transport
        )
        if account is None:
            self.post(
                CallStateChanged(
                    effect.call,
                    CallState.DISCONNECTED,
                    0,
                    "account disabled",
                    heard_from_network=False,
                )
            )
            return
        call = PhoneCall(self, account, effect.call)
        with self._calls_lock:
            self._calls[effect.call] = call
        try:
            call.makeCall(uri, pj.CallOpParam(True))
        except pj.Error as err:
            log.error("cannot call %s: %s", uri, _error_text(err))
            self.call_gone(effect.call)
            self.post(
                CallStateChanged(
                    effect.call,
                    CallState.DISCONNECTED,
                    0,
                    str(err.reason),
                    heard_from_network=False,
                )
            )
        self._wake_pump()

    def _answer(self, effect: Answer) -> None:
        def answer(call: PhoneCall) -> None:
            param = pj.CallOpParam(True)
            param.statusCode = effect.code
            call.answer(param)

        self._with_call(effect.call, answer)

    def _hang_up(self, call: PhoneCall, code: int) -> None:
        call.ended_locally = True
        param = pj.CallOpParam(True)
        if code:
            param.statusCode = code
        call.hangup(param)

    def _send_dtmf(self, effect: SendDtmf) -> None:
        def send(call: PhoneCall) -> None:
            param = pj.CallSendDtmfParam()
            param.digits = effect.digits
            param.duration = DTMF_DURATION_MS
            param.method = (
                pj.PJSUA_DTMF_METHOD_SIP_INFO
                if effect.method is DtmfMethod.SIP_INFO
                else pj.PJSUA_DTMF_METHOD_RFC2833
            )
            call.sendDtmf(param)

        self._with_call(effect.call, send)

    def _set_hold(self, effect: SetHold) -> None:
        self._with_call(effect.call, lambda call: self._offer_hold(call, effect.hold))

    def _offer_hold(self, call: PhoneCall, hold: bool) -> None:
        """Offer the far end a held (or resumed) call. pjsua refuses a new offer while one is
        still unanswered (hold, then resume at once) or the call's ACK has not come (swap
        straight after answering); the latest wish then waits on the call and is offered when
        the call moves on (`offer_waiting_hold`)."""
        call.waiting_hold = None
        param = pj.CallOpParam(True)
        try:
            with self._log_writer.refusal_expected():
                if hold:
                    call.setHold(param)
                else:
                    param.opt.flag = pj.PJSUA_CALL_UNHOLD
                    call.reinvite(param)
        except pj.Error as err:
            if err.status not in OFFER_NOT_YET:
                raise
            call.waiting_hold = hold
            log.info(
                "call %s: %s waits for the call to take a new offer",
                call.handle,
                "hold" if hold else "resume",
            )

    def offer_waiting_hold(self, handle: CallId) -> None:
        """A call's offer/answer moved on: make the hold or resume that waited for it."""

        def offer(call: PhoneCall) -> None:
            if call.waiting_hold is not None and call.isActive():  # not once it is ending
                self._offer_hold(call, call.waiting_hold)

        self._with_call(handle, offer)

    def _transfer(self, effect: Transfer) -> None:
        def transfer(call: PhoneCall) -> None:
            settings = self._config.accounts[call.account_index]
            uri = target_uri(
                effect.target,
                settings.registrar_host,
                settings.registrar_port,
                settings.transport,
            )
            call.xfer(uri, pj.CallOpParam(True))

        self._with_call(effect.call, transfer)

    def _connect_audio(self, effect: ConnectAudio) -> None:
        def connect(call: PhoneCall) -> None:
            if call.audio_index >= 0 and self._media is not None:
                media = call.getAudioMedia(call.audio_index)
                self._media.connect_call(effect.call, media, call.audio_codec)

        self._with_call(effect.call, connect)

    def _disconnect_audio(self, effect: DisconnectAudio) -> None:
        with self._calls_lock:
            call = self._calls.get(effect.call)
        slots = call.audio_slots() if call is not None else set()
        self._media_do(lambda m: m.disconnect_call(effect.call, slots))

    def _with_call(self, handle: CallId, action: Callable[[PhoneCall], None]) -> None:
        """Run a pjsua2 call operation; a call that is already gone is not an error."""
        with self._calls_lock:
            call = self._calls.get(handle)
        if call is None:
            log.debug("call %s already gone", handle)
            return
        try:
            action(call)
        except pj.Error as err:
            log.warning("call %s: %s", handle, _error_text(err))
        self._wake_pump()

    def _media_do(self, action: Callable[[MediaRouter], None]) -> None:
        if self._media is None:
            return
        try:
            action(self._media)
        except pj.Error as err:
            log.warning("media: %s", _error_text(err))

    # -- callbacks' side (any thread) --------------------------------------------------------

    def post(self, event: Event) -> None:
        """Hand an event to the loop; safe from any thread, never blocks."""
        self._loop.call_soon_threadsafe(self._dispatch, event)

    def incoming_call(self, account: PhoneAccount, call_id: int) -> None:
        handle = CallId(f"in-{next(self._incoming_ids)}")
        call = PhoneCall(self, account, handle, call_id)
        with self._calls_lock:
            self._calls[handle] = call
        peer = parse_peer(str(call.getInfo().remoteUri))
        self.post(CallIncoming(handle, account.index, peer.number, peer.name, peer.uri))

    def run_on_loop(self, function: Callable[[CallId], None], handle: CallId) -> None:
        """Have the loop run `function(handle)`: pjsua2 operations are made from there."""
        self._loop.call_soon_threadsafe(function, handle)

    def call_gone(self, handle: CallId) -> None:
        """The call is over: drop our reference once the loop has seen its last event."""
        self.run_on_loop(self._forget_call, handle)

    def _forget_call(self, handle: CallId) -> None:
        with self._calls_lock:
            self._calls.pop(handle, None)

    def _live_calls(self) -> list[PhoneCall]:
        with self._calls_lock:
            return list(self._calls.values())

    # -- the pump --------------------------------------------------------------------------

    def _run_pump(self) -> None:
        endpoint = self._endpoint
        assert endpoint is not None
        endpoint.libRegisterThread("sip-events")
        while not self._pump_stop.is_set():
            endpoint.libHandleEvents(PUMP_WAIT_MS)

    def _wake_pump(self) -> None:
        """Make the pump re-read pjsip's timers now rather than after its current wait."""
        if self._wake_socket is not None and self._wake_address is not None:
            with contextlib.suppress(OSError):
                self._wake_socket.sendto(WAKE_DATAGRAM, self._wake_address)


def _loose_route(uri: str) -> str:
    return uri if ";lr" in uri else f"{uri};lr"
