"""What the control socket's queries answer (status, history, battery), made from the phone's
read-only view, and how the command line prints it. Pure: no I/O, no phone state touched.
"""

from __future__ import annotations

import time
from typing import Any

from deskphone.core.history import HistoryEntry
from deskphone.core.phone import Call, PhoneState, PhoneView
from deskphone.core.power import PowerView, format_time_left
from deskphone.ui.screens import format_duration


def status(view: PhoneView) -> dict[str, Any]:
    """The phone's state as JSON: registrations, the call, settings, battery, problems."""
    return {
        "state": view.state.value,
        "off_hook": view.off_hook,
        "speaker": view.speaker,
        "digits": view.digits,
        "registrations": [
            {
                "account": index,
                "label": registration.label,
                "state": registration.state.name.lower(),
                "status": registration.describe(),
                "code": registration.code,
            }
            for index, registration in enumerate(view.registrations)
        ],
        "call": None if view.call is None else call(view.call, view.now),
        "ended": None
        if view.end_reason is None
        else {"reason": view.end_reason.value, "code": view.end_code},
        "dnd": view.dnd,
        "muted": view.muted,
        "missed_calls": view.missed_calls,
        "messages_waiting": view.messages_waiting,
        "new_messages": view.new_messages,
        "handset_present": view.handset_present,
        "settings": view.settings.to_dict(),
        "power": battery(view.power, view.now),
        "problems": list(view.problems),
    }


def call(call: Call, now: float) -> dict[str, Any]:
    return {
        "id": call.id,
        "direction": "in" if call.incoming else "out",
        "number": call.number,
        "name": call.name,
        "uri": call.uri,
        "sip_state": call.sip_state.value,
        "connected": call.connected_at is not None,
        "duration": 0.0 if call.connected_at is None else round(now - call.connected_at, 1),
        "on_hold": call.on_hold,
        "held_by_remote": call.held_by_remote,
        "codec": call.codec,
        "emergency": call.emergency,
    }


def history(entries: tuple[HistoryEntry, ...], limit: int | None = None) -> list[dict[str, Any]]:
    """The call log, newest first."""
    chosen = entries if limit is None else entries[:limit]
    return [{**entry.to_dict(), "reason_text": entry.reason.value} for entry in chosen]


def battery(power: PowerView, now: float) -> dict[str, Any]:
    return {
        "source": power.source,
        "supply": power.supply.value,
        "level": power.level.value,
        "percent": power.percent,
        "voltage": power.voltage,
        "charging": power.charging,
        "seconds_left": None if power.seconds_left is None else round(power.seconds_left),
        "error": power.error,
        "shutdown_in": None
        if power.shutdown_at is None
        else max(0.0, round(power.shutdown_at - now, 1)),
        "powering_off": power.powering_off,
        "summary": power.describe(),
    }


def status_line(view: PhoneView) -> str:
    """One line for systemd's STATUS=: registration and call state, battery if it has one."""
    parts = []
    if view.registrations:
        parts.append(", ".join(f"{r.label} {r.describe()}" for r in view.registrations))
    else:
        parts.append("no account")
    call_ = view.call
    if call_ is not None and view.state is PhoneState.CONNECTED:
        parts.append(f"in call with {call_.number}" + (" (on hold)" if call_.on_hold else ""))
    elif call_ is not None and view.state is PhoneState.CALLING:
        parts.append(f"calling {call_.number}")
    elif call_ is not None and view.state is PhoneState.RINGING:
        parts.append(f"ringing: {call_.number}")
    else:
        parts.append(view.state.value)
    if view.power.source != "none":
        parts.append(view.power.describe())
    if view.problems:
        parts.append("; ".join(view.problems))
    return "; ".join(parts)


# --- for people (the command line) ---------------------------------------------------------


def format_status(result: dict[str, Any]) -> str:
    lines = [f"state: {result['state']}"]
    for registration in result["registrations"]:
        lines.append(f"account {registration['label']}: {registration['status']}")
    if not result["registrations"]:
        lines.append("no account configured")
    active = result.get("call")
    if active:
        peer = f"{active['name']} ({active['number']})" if active["name"] else active["number"]
        detail = f", {format_duration(active['duration'])}" if active["connected"] else ""
        flags = [f for f in ("on_hold", "held_by_remote", "emergency") if active[f]]
        extra = f" [{', '.join(flags)}]" if flags else ""
        lines.append(f"call: {active['direction']} {peer}{detail}{extra}")
    if result.get("ended"):
        lines.append(f"last call: {result['ended']['reason']}")
    settings = result["settings"]
    lines.append(
        f"volumes: handset {settings['handset_volume']}, speaker {settings['speaker_volume']}, "
        f"ringer {settings['ringer_volume']}; ring {settings['ring_pattern']}"
        + ("; do not disturb" if result["dnd"] else "")
    )
    if result["missed_calls"]:
        lines.append(f"missed calls: {result['missed_calls']}")
    if result["messages_waiting"]:
        lines.append(f"voicemail: {result['new_messages']} new")
    if result["power"]["source"] != "none":
        lines.append(f"power: {result['power']['summary']}")
    lines.extend(f"problem: {problem}" for problem in result["problems"])
    return "\n".join(lines)


def format_history(entries: list[dict[str, Any]]) -> str:
    if not entries:
        return "no calls yet"
    lines = []
    for entry in entries:
        when = time.strftime("%Y-%m-%d %H:%M", time.localtime(entry["started"]))
        who = f"{entry['name']} ({entry['number']})" if entry["name"] else entry["number"]
        duration = f" {format_duration(entry['duration'])}" if entry["duration"] else ""
        lines.append(f"{when}  {entry['direction']:<6} {who}{duration}  {entry['reason_text']}")
    return "\n".join(lines)


def format_battery(result: dict[str, Any]) -> str:
    if result["source"] == "none":
        return "no battery backup configured ([power] source)"
    lines = [result["summary"]]
    if result["voltage"] is not None:
        lines.append(f"voltage: {result['voltage']:.2f} V")
    if result["seconds_left"] is not None:
        lines.append(f"time left: about {format_time_left(result['seconds_left'])}")
    if result["shutdown_in"] is not None:
        lines.append(f"powering off in {result['shutdown_in']:.0f} s unless mains returns")
    lines.append(f"source: {result['source']}")
    return "\n".join(lines)
