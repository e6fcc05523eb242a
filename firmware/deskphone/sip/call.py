"""pjsua2 Call subclass: call, transaction and media callbacks turned into core events."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import pjsua2 as pj

from deskphone.core.events import (
    CallId,
    CallMediaChanged,
    CallState,
    CallStateChanged,
    ReinviteRefused,
    TransferStatus,
)
from deskphone.service.logs import fields

if TYPE_CHECKING:
    from deskphone.sip.account import PhoneAccount
    from deskphone.sip.stack import SipStack

_STATES = {
    pj.PJSIP_INV_STATE_CALLING: CallState.CALLING,
    pj.PJSIP_INV_STATE_EARLY: CallState.EARLY,
    pj.PJSIP_INV_STATE_CONNECTING: CallState.CONNECTING,
    pj.PJSIP_INV_STATE_CONFIRMED: CallState.CONFIRMED,
    pj.PJSIP_INV_STATE_DISCONNECTED: CallState.DISCONNECTED,
}
_LIVE_MEDIA = (pj.PJSUA_CALL_MEDIA_ACTIVE, pj.PJSUA_CALL_MEDIA_REMOTE_HOLD)

log = logging.getLogger(__name__)


class PhoneCall(pj.Call):  # type: ignore[misc]
    """One call; `handle` is the id the core knows it by."""

    def __init__(
        self,
        stack: SipStack,
        account: PhoneAccount,
        handle: CallId,
        call_id: int = pj.PJSUA_INVALID_ID,
    ) -> None:
        super().__init__(account, call_id)
        self._stack = stack
        self.handle = handle
        self.account_index = account.index
        # An incoming call came from the network; an outgoing one has heard nothing yet.
        self.heard_from_network = call_id != pj.PJSUA_INVALID_ID
        self.ended_locally = False  # we hung up, cancelled or refused it
        self.audio_index = -1  # media index of the active audio stream, -1 when none
        self.audio_codec = ""  # its codec, as pjsua names it ("G722", "PCMU")
        # Hold (True) or resume (False) asked for while an offer was out; set and cleared on
        # the loop's thread, read here to know when to ask the loop to try again.
        self.waiting_hold: bool | None = None
        self.confirmed = False  # the call was set up: an INVITE of ours now is a re-INVITE

    def onCallState(self, prm: pj.OnCallStateParam) -> None:
        self._note_response(prm.e)  # a final response ends the call without a tsx callback
        info = self.getInfo()
        state = _STATES.get(info.state)
        if state is None:
            return
        self._stack.post(
            CallStateChanged(
                call=self.handle,
                state=state,
                code=int(info.lastStatusCode),
                reason=str(info.lastReason),
                heard_from_network=self.heard_from_network,
                local=self.ended_locally,
            )
        )
        if state is CallState.CONFIRMED:
            self.confirmed = True
        if state is CallState.DISCONNECTED:
            self._stack.call_gone(self.handle)
        else:
            self._exchange_moved()  # an answered call's ACK comes as a state, not a transaction

    def onCallTsxState(self, prm: pj.OnCallTsxStateParam) -> None:
        self._note_response(prm.e)
        self._note_reinvite_refused(prm.e)
        self._exchange_moved()

    def _note_reinvite_refused(self, event: pj.SipEvent) -> None:
        """A re-INVITE of ours (a hold, a resume) was refused: the core hears of it."""
        if not self.confirmed or event.type != pj.PJSIP_EVENT_TSX_STATE:
            return
        change = event.body.tsxState
        tsx = change.tsx
        code = int(tsx.statusCode)
        if tsx.role != pj.PJSIP_ROLE_UAC or tsx.method != "INVITE" or code < 300:
            return
        if code in (401, 407):
            return  # a challenge: pjsua sends it again with credentials
        # Once per answer: an error answer completes the transaction, a timeout ends it.
        if tsx.state == pj.PJSIP_TSX_STATE_COMPLETED or (
            tsx.state == pj.PJSIP_TSX_STATE_TERMINATED
            and change.prevState != pj.PJSIP_TSX_STATE_COMPLETED
        ):
            self._stack.post(ReinviteRefused(self.handle, code, str(tsx.statusText)))

    def _exchange_moved(self) -> None:
        """The call, a transaction or the media moved on (the offer that was out answered, or
        the call confirmed): the loop tries a waiting hold or resume again, and it waits on if
        pjsua still refuses it."""
        if self.waiting_hold is not None:
            self._stack.run_on_loop(self._stack.offer_waiting_hold, self.handle)

    def _note_response(self, event: pj.SipEvent) -> None:
        """Remember that something came back from the network (rather than a local timeout or
        transport error): it tells "unreachable" from "no answer"."""
        if (
            event.type == pj.PJSIP_EVENT_TSX_STATE
            and event.body.tsxState.type == pj.PJSIP_EVENT_RX_MSG
        ):
            self.heard_from_network = True

    def onCallMediaState(self, prm: pj.OnCallMediaStateParam) -> None:
        info = self.getInfo()
        self.audio_index = -1
        self.audio_codec = ""
        held = False
        codec = ""
        for media in info.media:
            if media.type == pj.PJMEDIA_TYPE_AUDIO and media.status in _LIVE_MEDIA:
                self.audio_index = int(media.index)
                held = media.status == pj.PJSUA_CALL_MEDIA_REMOTE_HOLD
                stream = self.getStreamInfo(media.index)
                self.audio_codec = str(stream.codecName)
                codec = f"{stream.codecName}/{stream.codecClockRate}"
                break
        self._stack.post(CallMediaChanged(self.handle, self.audio_index >= 0, codec, held))
        self._exchange_moved()

    def audio_slots(self) -> set[int]:
        """The conference bridge slots the call's audio streams hold now (none once it ended)."""
        if not self.isActive():  # ended: asked, pjsua would log an error as it raised one
            return set()
        try:
            info = self.getInfo()  # kept: its media list points into it
        except pj.Error:  # ended in the meantime
            return set()
        return {
            int(m.audioConfSlot)
            for m in info.media
            if m.type == pj.PJMEDIA_TYPE_AUDIO and m.audioConfSlot != pj.PJSUA_INVALID_ID
        }

    def onStreamDestroyed(self, prm: pj.OnStreamDestroyedParam) -> None:
        # The stream's statistics are still readable here and gone a moment later.
        try:
            stat = self.getStreamStat(prm.streamIdx)
        except pj.Error as err:
            log.debug("no statistics for the ended audio stream: %s", err.reason)
            return
        report = audio_report(stat)
        log.info(
            "audio received in the call: %s",
            ", ".join(f"{key.replace('_', ' ')} {value}" for key, value in report.items()),
            extra=fields("call_audio", **report),
        )

    def onCallTransferRequest(self, prm: pj.OnCallTransferRequestParam) -> None:
        # The far end asks us to call someone else (REFER). The core has no way yet to take
        # over a call it did not place, so decline rather than let pjsua2 run an unmanaged one.
        prm.statusCode = 603

    def onCallTransferStatus(self, prm: pj.OnCallTransferStatusParam) -> None:
        self._stack.post(
            TransferStatus(self.handle, int(prm.statusCode), str(prm.reason), bool(prm.finalNotify))
        )

    def onCallRedirected(self, prm: pj.OnCallRedirectedParam) -> int:
        # A 3xx names where the callee is now; a desk phone follows it.
        return int(pj.PJSIP_REDIRECT_ACCEPT)


def audio_report(stat: pj.StreamStat) -> dict[str, int]:
    """What a desk phone's "RTP statistics" page shows of an ended stream: packets received
    and lost, the far end's jitter, and what the jitter buffer made of it (its mean and
    largest delay, the frames it had to invent because it ran dry, and those it dropped)."""
    received = stat.rtcp.rxStat
    jitter = stat.jbuf
    return {
        "packets": int(received.pkt),
        "lost": int(received.loss),
        "jitter_ms": round(received.jitterUsec.mean / 1000),
        "jitter_max_ms": round(received.jitterUsec.max / 1000),
        "buffer_ms": int(jitter.avgDelayMsec),
        "buffer_max_ms": int(jitter.maxDelayMsec),
        "ran_dry": int(jitter.empty),
        "dropped": int(jitter.discard),
    }
