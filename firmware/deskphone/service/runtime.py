"""The daemon's ties to the world around the phone: systemd (READY, STATUS, the watchdog), the
control socket, the state directory, the battery backup, config reloads and the power-off.

The App owns one `ServiceRuntime` and calls it at fixed points: `load_state()` before the phone
is made, `start()` once the phone is up, `after_step()` after every event or command, `stop()`
on the way down. Everything here runs on the event loop's thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import shlex
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from deskphone import __version__
from deskphone.config import Config, PowerConfig
from deskphone.core.effects import Effect, LogCall, PowerOff, SaveSettings
from deskphone.core.events import ServiceProblem
from deskphone.core.history import HistoryEntry
from deskphone.core.phone import CommandError, PhoneView, commands
from deskphone.core.power import BatteryLevel, PowerView, Supply
from deskphone.errors import ConfigError, HardwareError, SipError
from deskphone.hw.power import BusFactory, PowerMonitor, SimulatedUps, open_monitor
from deskphone.service import queries
from deskphone.service import reload as reloading
from deskphone.service.control import ControlError, ControlServer, Peer, server_socket_path
from deskphone.service.logs import fields, set_level
from deskphone.service.notify import Notifier
from deskphone.service.state import SavedState, StateStore

if TYPE_CHECKING:
    from deskphone.app import App

log = logging.getLogger(__name__)

POWEROFF_TIMEOUT = 30.0  # seconds the power-off command may take
# The simulator runs on someone's computer: it runs a power-off command only if one is set.
SAFE_DEFAULT = shlex.split(PowerConfig.poweroff_command)
QUERIES = {
    "status": ("", "the phone's state: registrations, call, settings, battery, problems"),
    "history": ("[N]", "the call log, newest first (N entries)"),
    "battery": ("", "the battery backup: supply, charge, time left"),
    "commands": ("", "every command and query the control socket takes"),
    "reload": ("", "re-read the config file; an invalid one is refused and the running stays"),
    "simulate-power": (
        "mains on|off | percent N | fail [WHY] | recover",
        'drive the simulated UPS ([power] source = "sim")',
    ),
}


class ServiceRuntime:
    """Systemd, control socket, state, power: around one App."""

    def __init__(self, app: App, *, bus_factory: BusFactory | None = None) -> None:
        self._app = app
        self._bus_factory = bus_factory
        self.notifier = Notifier()
        self.store = StateStore(app.config.phone.state_dir, report=self._state_problem)
        self.power: PowerMonitor | None = None
        self.control: ControlServer | None = None
        self.finished = asyncio.Event()  # set when the phone powered itself off
        self._load_problems: list[str] = []
        self._deferred_accounts: Config | None = None  # a reload waiting for the call to end
        self._deferred_retry: asyncio.TimerHandle | None = None
        self._power_off: asyncio.Task[None] | None = None
        self._power_view: PowerView | None = None

    # -- start and stop --------------------------------------------------------------------

    def load_state(self) -> SavedState:
        """The saved settings and call log, for the phone to start with."""
        saved = self.store.load()
        for problem in saved.problems:
            log.error("%s", problem, extra=fields("state_damaged"))
        self._load_problems = saved.problems
        return saved

    def effect_handlers(self) -> dict[type[Effect], Callable[[Any], None]]:
        return {
            SaveSettings: lambda effect: self.store.save_settings(effect.settings),
            LogCall: lambda effect: self._log_call(effect.entry),
            PowerOff: self._start_power_off,
        }

    async def start(self) -> None:
        """Open the control socket and the battery monitor, then tell systemd the phone is up.
        Neither failing stops the phone: each is reported on the display and in the journal."""
        app = self._app
        if self._load_problems:
            app.dispatch(ServiceProblem("state", self._load_problems[0]))
        await self._open_control()
        self._open_power()
        self.notifier.ready(queries.status_line(app.view()))
        self.notifier.start_watchdog(asyncio.get_running_loop(), self._health)
        log.info("deskphone %s ready", __version__, extra=fields("ready", version=__version__))

    async def begin_stop(self) -> None:
        """First of the way down: tell systemd, and let a power-off under way finish (it
        unregisters and destroys the SIP stack itself)."""
        self.notifier.stopping()
        if self._power_off is not None:
            await asyncio.wait({self._power_off}, timeout=POWEROFF_TIMEOUT + 5)

    async def stop(self) -> None:
        """Last of the way down, after the SIP stack: close the socket and the battery
        monitor, and wait for the state to reach the disk."""
        if self._deferred_retry is not None:
            self._deferred_retry.cancel()
        if self.control is not None:
            await self.control.close()
            self.control = None
        if self.power is not None:
            self.power.close()
            self.power = None
        loop = asyncio.get_running_loop()
        if not await loop.run_in_executor(None, self.store.close):
            log.error("state not fully saved at shutdown: %s", self.store.problem or "timed out")
        self.notifier.close()

    def _health(self) -> str:
        """Why the phone is not well (the watchdog stops pinging), or "" when it is."""
        stack = self._app.stack
        if stack is not None and not stack.healthy:
            return "the SIP event thread has stopped"
        return ""

    async def _open_control(self) -> None:
        settings = self._app.config.control
        if not settings.enabled:
            return
        server = ControlServer(server_socket_path(settings.socket), settings.group, self._request)
        try:
            await server.start()
        except ControlError as err:
            log.error("%s", err, extra=fields("control_failed"))
            self._app.dispatch(ServiceProblem("control", f"no remote control: {err}"))
            return
        self.control = server

    def _open_power(self) -> None:
        app = self._app
        if self.power is not None:
            self.power.close()
            self.power = None
        assert app.kit is not None
        try:
            self.power = open_monitor(
                app.config.power,
                loop=asyncio.get_running_loop(),
                post=app.post,
                pin_factory=app.kit.pin_factory,
                bus_factory=self._bus_factory,
            )
            if self.power is not None:
                self.power.start()
                log.info("battery backup: %s", self.power.source.description)
        except HardwareError as err:
            self.power = None
            log.error("battery backup unusable: %s", err, extra=fields("power_failed"))
            app.dispatch(ServiceProblem("power", f"battery backup unusable: {err}"))

    # -- after every step ------------------------------------------------------------------

    def after_step(self, view: PhoneView) -> None:
        """Keep systemd's STATUS current, journal battery changes, apply deferred accounts."""
        self.notifier.status(queries.status_line(view))
        self._journal_power(view.power)
        if self._deferred_accounts is not None and view.call is None:
            self._apply_deferred_accounts()

    def _apply_deferred_accounts(self) -> None:
        """The call a reload waited for has ended: switch accounts once the SIP stack has let
        go of it too (its last events come a moment after the phone's)."""
        self._deferred_retry = None
        app = self._app
        if self._deferred_accounts is None or app.phone.call is not None:
            return
        if app.stack is not None and app.stack.calls_active:
            if self._deferred_retry is None:
                loop = asyncio.get_running_loop()
                self._deferred_retry = loop.call_later(0.1, self._apply_deferred_accounts)
            return
        config, self._deferred_accounts = self._deferred_accounts, None
        self._apply(dataclasses.replace(app.config, accounts=config.accounts), True)

    def _journal_power(self, now: PowerView) -> None:
        before, self._power_view = self._power_view, now
        if before is None or now.source == "none":
            return
        info = fields(
            "power",
            power_supply=now.supply.value,
            battery_level=now.level.value,
            battery_percent=None if now.percent is None else round(now.percent),
            battery_seconds_left=None if now.seconds_left is None else round(now.seconds_left),
        )
        if now.supply is not before.supply and now.supply is Supply.BATTERY:
            log.warning("mains power lost: %s", now.describe(), extra=info)
        elif now.supply is not before.supply and before.supply is Supply.BATTERY:
            log.info("mains power is back: %s", now.describe(), extra=info)
        if now.level is not before.level and now.level is not BatteryLevel.NORMAL:
            log.warning("battery %s: %s", now.level.value, now.describe(), extra=info)
        if now.error and now.error != before.error:
            log.error("battery gauge: %s", now.error, extra=fields("power_gauge_failed"))
        elif before.error and not now.error:
            log.info("battery gauge answers again", extra=fields("power_gauge_back"))

    def _log_call(self, entry: HistoryEntry) -> None:
        self.store.log_call(entry)
        log.info(
            "call %s %s: %s, %.0f s",
            entry.direction,
            entry.number,
            entry.reason.value,
            entry.duration,
            extra=fields(
                "call_ended",
                call_direction=entry.direction,
                call_number=entry.number,
                call_name=entry.name,
                call_duration=round(entry.duration, 1),
                end_reason=entry.reason.name.lower(),
                sip_code=entry.code or None,
            ),
        )

    def _state_problem(self, message: str) -> None:
        """From the state writer's thread: show (or clear) a write problem."""
        with contextlib.suppress(RuntimeError):  # a closed loop: the journal has it anyway
            self._app.post(ServiceProblem("state", message))

    # -- the control socket ----------------------------------------------------------------

    async def _request(self, command: str, args: list[str], peer: Peer) -> Any:
        app = self._app
        if command in QUERIES:
            log.debug("control query %s %s (uid %d)", command, args, peer.uid)
            return await self._query(command, args)
        log.info(
            "control: %s %s (uid %d)",
            command,
            " ".join(args),
            peer.uid,
            extra=fields("control_command", command=command, peer_uid=peer.uid),
        )
        app.command(command, *args)  # CommandError goes back to the caller
        return queries.status(app.view())

    async def _query(self, command: str, args: list[str]) -> Any:
        view = self._app.view()
        if not QUERIES[command][0] and args:
            raise CommandError(f"{command} takes no arguments")
        if command == "status":
            return {
                **queries.status(view),
                "version": __version__,
                "state_saved": self.store.saved,
            }
        if command == "history":
            return queries.history(view.history, _count(args))
        if command == "battery":
            return queries.battery(view.power, view.now)
        if command == "commands":
            table = [{"name": c.name, "usage": c.usage, "summary": c.summary} for c in commands()]
            extra = [{"name": n, "usage": u, "summary": s} for n, (u, s) in QUERIES.items()]
            return sorted(table + extra, key=lambda entry: entry["name"])
        if command == "reload":
            return await self.reload()
        return self._simulate_power(args)

    def _simulate_power(self, args: list[str]) -> Any:
        source = self.power.source if self.power is not None else None
        if not isinstance(source, SimulatedUps):
            raise CommandError('simulate-power: [power] source is not "sim"')
        usage = f"usage: simulate-power {QUERIES['simulate-power'][0]}"
        what, *rest = args or [""]
        if what == "mains" and rest in (["on"], ["off"]):
            source.set(mains=rest[0] == "on")
        elif what == "percent" and len(rest) == 1 and _is_number(rest[0]):
            source.set(percent=float(rest[0]))
        elif what == "fail":
            source.set(failure=" ".join(rest) or "simulated failure")
        elif what == "recover" and not rest:
            source.set(failure="")
        else:
            raise CommandError(usage)
        return None

    # -- reload ----------------------------------------------------------------------------

    async def reload(self, path: Path | None = None) -> dict[str, Any]:
        """Re-read the config: invalid, it is refused (`ConfigError`) and the running one
        stays; valid, it applies without dropping a call (see service/reload.py)."""
        app = self._app
        if path is None:
            if app.config.source.startswith("<"):
                raise ControlError("the phone was started without a config file", "config")
            path = Path(app.config.source)
        self.notifier.reloading()
        try:
            loop = asyncio.get_running_loop()
            try:
                new = await loop.run_in_executor(None, reloading.validate, path)
            except ConfigError as err:
                log.error(
                    "config not reloaded, the running one stays: %s",
                    err,
                    extra=fields("reload_failed", config_file=str(path)),
                )
                first = err.problems[0] if err.problems else err
                app.dispatch(ServiceProblem("config", f"config not reloaded: {first}"))
                raise
            return self._reload_with(new)
        finally:
            self.notifier.reloaded()

    def _reload_with(self, new: Config) -> dict[str, Any]:
        app = self._app
        plan = reloading.plan(app.config, new)
        config = plan.config
        deferred: list[str] = []
        if plan.accounts_changed and app.phone.call is not None:
            self._deferred_accounts = config
            config = dataclasses.replace(config, accounts=app.config.accounts)
            deferred.append(reloading.ACCOUNTS)
        restart_needed = list(plan.restart_needed)
        if not self._apply(config, plan.accounts_changed and not deferred):
            restart_needed.append(reloading.ACCOUNTS)
        app.dispatch(ServiceProblem("config", ""))
        summary = plan.describe()
        if deferred:
            summary += "; the accounts change when the call ends"
        log.info(
            "%s",
            summary,
            extra=fields(
                "reload",
                config_file=new.source,
                changed=",".join(plan.changed),
                restart_needed=",".join(restart_needed),
            ),
        )
        return {
            "changed": plan.changed,
            "restart_needed": restart_needed,
            "deferred": deferred,
            "summary": summary,
        }

    def _apply(self, config: Config, accounts: bool) -> bool:
        """Make `config` the running one; False if its accounts could not be applied."""
        app = self._app
        old = app.config
        applied = True
        if accounts and app.stack is not None:
            try:
                app.stack.replace_accounts(config)
            except SipError as err:
                log.error("accounts not changed: %s", err)
                config = dataclasses.replace(config, accounts=old.accounts)
                applied = False
        app.config = config
        app.carry_out(app.phone.reconfigure(config))
        if config.phone.log_level != old.phone.log_level:
            set_level(config.phone.log_level)
        if config.power != old.power:
            self._open_power()
        return applied

    # -- power-off -------------------------------------------------------------------------

    def _start_power_off(self, effect: PowerOff) -> None:
        if self._power_off is None:
            self._power_off = asyncio.get_running_loop().create_task(
                self._power_off_sequence(effect.reason)
            )

    async def _power_off_sequence(self, reason: str) -> None:
        """Unregister (waiting for the registrar), save the state, then power off."""
        app = self._app
        log.critical("powering off: %s", reason, extra=fields("power_off", reason=reason))
        self.notifier.status(f"powering off: {reason}")
        if app.stack is not None:
            await app.stack.shutdown()
        loop = asyncio.get_running_loop()
        if not await loop.run_in_executor(None, self.store.flush):
            log.error("state not fully saved before power-off: %s", self.store.problem)
        command = shlex.split(app.config.power.poweroff_command)
        if app.kit is not None and app.kit.name == "sim" and command == SAFE_DEFAULT:
            log.warning("simulated phone: not powering this computer off (%s)", " ".join(command))
            self.finished.set()
            return
        try:
            process = await asyncio.create_subprocess_exec(
                *command,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.STDOUT,
            )
            output, _ = await asyncio.wait_for(process.communicate(), POWEROFF_TIMEOUT)
        except (OSError, TimeoutError) as err:
            log.critical("power-off command %r failed: %s", command, err)
        else:
            if process.returncode != 0:
                log.critical(
                    "power-off command %r exited %s: %s",
                    command,
                    process.returncode,
                    output.decode(errors="replace").strip(),
                )
        self.finished.set()


def _count(args: list[str]) -> int | None:
    if not args:
        return None
    if len(args) > 1 or not args[0].isdigit() or int(args[0]) < 1:
        raise CommandError("usage: history [N] (N a positive number)")
    return int(args[0])


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True
