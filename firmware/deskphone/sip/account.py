"""pjsua2 Account subclass: registration and incoming-call callbacks turned into core events.

Callbacks run on the SIP event thread (or inside a pjsua2 call made by the loop). They read
what they need from pjsua2, post one event and return; they never block.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pjsua2 as pj

from deskphone.core.events import RegistrationChanged, RegState
from deskphone.sip.mwi import message_summary

if TYPE_CHECKING:
    from deskphone.sip.stack import SipStack


class PhoneAccount(pj.Account):  # type: ignore[misc]
    """One configured account; `index` is its place in the config's account list."""

    def __init__(self, stack: SipStack, index: int) -> None:
        super().__init__()
        self._stack = stack
        self.index = index
        self.registered = False
        self.awaiting_reply = False  # a REGISTER we sent has not been answered yet

    def onRegState(self, prm: pj.OnRegStateParam) -> None:
        code, reason, expires = int(prm.code), str(prm.reason), int(prm.expiration)
        active = bool(self.getInfo().regIsActive)
        if 200 <= code < 300 and active:
            state = RegState.REGISTERED
        elif 200 <= code < 300:
            state = RegState.UNREGISTERED
        else:
            state = RegState.FAILED
            if code == 0:  # no response at all: pjsip reports only a status
                code, reason = 408, reason or "no response"
        self.registered = state is RegState.REGISTERED
        self._stack.post(RegistrationChanged(self.index, state, code, reason, expires))
        self.awaiting_reply = False

    def onIncomingCall(self, prm: pj.OnIncomingCallParam) -> None:
        self._stack.incoming_call(self, int(prm.callId))

    def onMwiInfo(self, prm: pj.OnMwiInfoParam) -> None:
        event = message_summary(self.index, str(prm.rdata.wholeMsg))
        if event is not None:
            self._stack.post(event)
