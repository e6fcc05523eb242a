"""Reloading the config (SIGHUP, `deskphone reload`, `systemctl reload deskphone`).

The new file is checked exactly as at start-up (the config, its hardware profile, the power-loss
pin against that profile). If it is invalid, nothing changes: the running config stays and the
reason is reported. If it is valid, what can change under a running phone changes at once
(names, tones, the dial plan, log level, battery thresholds and source); the accounts change as
soon as no call is up, so a reload never drops a call; what is wired into the running process
(SIP port and address, audio, hardware, display, the control socket, the state directory) keeps
its old value until the next restart, and the reload says which keys those are.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from deskphone.config import Config, load_config
from deskphone.errors import ConfigError

ACCOUNTS = "account"
# Keys (or whole sections) that only a restart applies.
RESTART_KEYS = (
    "phone.sip_port",
    "phone.bind_address",
    "phone.state_dir",
    "audio",
    "hardware",
    "display",
    "control",
)
_SECTION_KEYS = {"accounts": ACCOUNTS}  # Config field -> the name the file gives it


def validate(path: Path) -> Config:
    """Load the config at `path` and check it as `deskphone run` would; `ConfigError` if not."""
    from deskphone.hw.power import pin_problems
    from deskphone.hw.profile import load_profile

    config = load_config(path)
    profile = load_profile(config.hardware.profile, config.display.interface)
    problems = pin_problems(config.power, profile)
    if problems:
        raise ConfigError(str(path), problems)
    return config


@dataclass
class ReloadPlan:
    """What a reload changes: `config` is what runs now (the new file, minus restart-only keys)."""

    config: Config
    changed: list[str] = field(default_factory=list)  # applied now (or, accounts, after the call)
    restart_needed: list[str] = field(default_factory=list)

    @property
    def accounts_changed(self) -> bool:
        return ACCOUNTS in self.changed

    def describe(self) -> str:
        if not self.changed and not self.restart_needed:
            return "config reloaded: nothing changed"
        text = "config reloaded"
        if self.changed:
            text += f": changed {', '.join(self.changed)}"
        if self.restart_needed:
            text += f"; takes a restart: {', '.join(self.restart_needed)}"
        return text


def plan(running: Config, new: Config) -> ReloadPlan:
    """Compare the running config with a new one and decide what applies now."""
    result = ReloadPlan(config=running)
    replacements: dict[str, Any] = {}
    for f in dataclasses.fields(Config):
        if f.name == "source":
            continue
        key = _SECTION_KEYS.get(f.name, f.name)
        old_value, new_value = getattr(running, f.name), getattr(new, f.name)
        if old_value == new_value:
            continue
        if key in RESTART_KEYS:
            result.restart_needed.append(key)
            continue
        if not dataclasses.is_dataclass(new_value):
            result.changed.append(key)
            replacements[f.name] = new_value
            continue
        kept: dict[str, Any] = {}
        for item in dataclasses.fields(new_value):
            dotted = f"{key}.{item.name}"
            if getattr(old_value, item.name) == getattr(new_value, item.name):
                continue
            if dotted in RESTART_KEYS:
                result.restart_needed.append(dotted)
                kept[item.name] = getattr(old_value, item.name)
            else:
                result.changed.append(dotted)
        replacements[f.name] = dataclasses.replace(new_value, **kept)  # type: ignore[type-var]
    result.config = dataclasses.replace(running, **replacements, source=new.source)
    return result
