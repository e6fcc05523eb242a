"""Logging: to the journal with structured fields when systemd runs the phone, else one line
per record on stderr.

Under systemd, stderr is a journal stream and systemd says so in JOURNAL_STREAM (the stream's
device and inode). Then records go through the journal's native protocol instead, so each keeps
its fields: PRIORITY, CODE_FILE/LINE/FUNC, and those the phone adds for what it is about
(``DESKPHONE_EVENT=call_ended``, ``CALL_NUMBER=``, ``SIP_CODE=``...), which
``journalctl -u deskphone DESKPHONE_EVENT=call_ended`` can select. `fields()` builds them:

    log.info("call ended", extra=fields("call_ended", call_number="1002", sip_code=486))
"""

from __future__ import annotations

import importlib
import logging
import os
import re
import sys
from collections.abc import Mapping

LEVELS = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warning": logging.WARNING,
    "error": logging.ERROR,
}
IDENTIFIER = "deskphone"
EVENT_FIELD = "DESKPHONE_EVENT"
# A journal field name: upper case, digits and underscores, not starting with "_" (trusted).
_FIELD_NAME = re.compile(r"[A-Z][A-Z0-9_]{0,63}")
# Record attributes logging itself sets: never journal fields, even in upper case.
_RESERVED = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None)))


def fields(event: str, **values: object) -> dict[str, object]:
    """`extra=` for a log call: the event's name and its fields, names upper-cased."""
    extra: dict[str, object] = {EVENT_FIELD: event}
    for name, value in values.items():
        if value is not None and value != "":
            extra[name.upper()] = value
    return extra


def journal_fields(record: logging.LogRecord) -> dict[str, str]:
    """The structured fields a record carries (those `fields()` put there)."""
    return {
        name: str(value)
        for name, value in vars(record).items()
        if name not in _RESERVED and _FIELD_NAME.fullmatch(name)
    }


def stderr_is_journal(environ: Mapping[str, str] | None = None) -> bool:
    """True when stderr is the journal stream systemd gave us (not merely inherited)."""
    env = os.environ if environ is None else environ
    stream = env.get("JOURNAL_STREAM", "")
    device, _, inode = stream.partition(":")
    if not (device.isdigit() and inode.isdigit()):
        return False
    try:
        info = os.fstat(sys.stderr.fileno())
    except (OSError, ValueError, AttributeError):
        return False
    return (info.st_dev, info.st_ino) == (int(device), int(inode))


class JournalHandler(logging.Handler):
    """Records to the journal's native socket, with their structured fields."""

    def __init__(self, identifier: str = IDENTIFIER) -> None:
        super().__init__()
        # Imported on use (only a daemon under systemd pays for it), and by name: the
        # repository's own systemd/ directory would otherwise shadow the package for mypy.
        journal = importlib.import_module("systemd.journal")
        self._send = journal.send
        self._identifier = identifier

    def emit(self, record: logging.LogRecord) -> None:
        try:
            message = self.format(record)
            self._send(
                message,
                PRIORITY=str(_priority(record.levelno)),
                SYSLOG_IDENTIFIER=self._identifier,
                LOGGER=record.name,
                THREAD_NAME=record.threadName or "",
                CODE_FILE=record.pathname,
                CODE_LINE=record.lineno,
                CODE_FUNC=record.funcName,
                **journal_fields(record),
            )
        except Exception:
            self.handleError(record)


def _priority(level: int) -> int:
    """syslog priority of a logging level (err 3, warning 4, info 6, debug 7)."""
    if level >= logging.CRITICAL:
        return 2
    if level >= logging.ERROR:
        return 3
    if level >= logging.WARNING:
        return 4
    if level >= logging.INFO:
        return 6
    return 7


def setup_logging(
    level: str = "info", *, stream: object = None, journal: bool | None = None
) -> str:
    """Configure the root logger once; returns where records go ("journal" or "stderr").

    `journal` None decides by JOURNAL_STREAM; a `stream` given always wins.
    """
    use_journal = stream is None and (stderr_is_journal() if journal is None else journal)
    handler: logging.Handler | None = None
    if use_journal:
        try:
            handler = JournalHandler()
            handler.setFormatter(logging.Formatter("%(message)s"))
        except ImportError:  # systemd-python missing: the stream still reaches the journal
            handler = None
    if handler is None:
        handler = logging.StreamHandler(stream or sys.stderr)  # type: ignore[arg-type]
        handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(LEVELS[level])
    return "journal" if isinstance(handler, JournalHandler) else "stderr"


def set_level(level: str) -> None:
    """Change how much is logged, e.g. after a config reload."""
    logging.getLogger().setLevel(LEVELS[level])
