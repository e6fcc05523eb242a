"""Shared by the benchmarks: figures, summaries of repeated runs, /proc readings, results files."""

from __future__ import annotations

import json
import os
import statistics
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

RESULTS_DIR = Path(__file__).resolve().parent / "results"
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def summary(values: list[float], unit: str) -> dict[str, Any]:
    """Median and spread of repeated runs (the machines are shared: one run proves little)."""
    return {
        "median": statistics.median(values),
        "min": min(values),
        "max": max(values),
        "runs": len(values),
        "unit": unit,
        "values": values,
    }


@dataclass
class Figure:
    """One row of the results table: deskphone's figure, baresip's on the same work if the
    figure has a peer, and the target it is held to."""

    name: str
    unit: str
    deskphone: dict[str, Any]
    baresip: dict[str, Any] | None = None
    target: str = ""  # e.g. "<= 1.5 s" or "<= 1.5x baresip"
    met: bool | None = None
    note: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def ratio(self) -> float | None:
        if self.baresip is None or not self.baresip["median"]:
            return None
        return float(self.deskphone["median"] / self.baresip["median"])


def figure(
    name: str,
    unit: str,
    ours: list[float],
    theirs: list[float] | None = None,
    *,
    limit: float | None = None,
    ratio_limit: float | None = None,
    note: str = "",
) -> Figure:
    """A figure from raw runs; `limit` is an absolute ceiling, `ratio_limit` one against baresip."""
    row = Figure(name, unit, summary(ours, unit), summary(theirs, unit) if theirs else None)
    checks = []
    if limit is not None:
        row.target = f"<= {limit:g} {unit}"
        checks.append(row.deskphone["median"] <= limit)
    if ratio_limit is not None and row.ratio is not None:
        row.target = (row.target + "; " if row.target else "") + f"<= {ratio_limit:g}x baresip"
        checks.append(row.ratio <= ratio_limit)
    row.met = all(checks) if checks else None
    row.note = note
    return row


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time of a process and all its threads, from /proc (not a clock)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def memory_mb(pid: int) -> tuple[float, float]:
    """Resident memory now (VmRSS) and at its peak (VmHWM), in MB."""
    values = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, rest = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            values[key] = int(rest.split()[0]) / 1024
    return values["VmRSS"], values["VmHWM"]


def write_results(name: str, figures: dict[str, Any]) -> Path:
    """One benchmark's own file (kept for the modules that run alone)."""
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    path = RESULTS_DIR / f"{name}.json"
    path.write_text(
        json.dumps({"benchmark": name, "when": time.time(), "figures": figures}, indent=2)
    )
    return path


def _cell(stats: dict[str, Any] | None) -> str:
    if stats is None:
        return "—"
    return f"{stats['median']:.4g} ({stats['min']:.4g}–{stats['max']:.4g})"


def markdown_table(rows: list[Figure]) -> str:
    lines = [
        "| figure | unit | deskphone median (min–max) | baresip median (min–max) | ratio "
        "| target | met |",
        "|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        ratio = f"{row.ratio:.2f}" if row.ratio is not None else "—"
        met = {True: "yes", False: "**no**", None: "—"}[row.met]
        lines.append(
            f"| {row.name} | {row.unit} | {_cell(row.deskphone)} | {_cell(row.baresip)} "
            f"| {ratio} | {row.target or '—'} | {met} |"
        )
    return "\n".join(lines)


def write_table(rows: list[Figure], runs: int) -> tuple[Path, Path]:
    """bench/results/latest.json and latest.md, the figures of one whole run."""
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    data = {
        "when": time.strftime("%Y-%m-%d %H:%M:%S"),
        "runs": runs,
        "machine": os.uname().machine,
        "cpus": os.cpu_count(),
        "figures": [asdict(row) | {"ratio": row.ratio} for row in rows],
    }
    json_path = RESULTS_DIR / "latest.json"
    json_path.write_text(json.dumps(data, indent=2))
    md_path = RESULTS_DIR / "latest.md"
    notes = "\n".join(f"- {row.name}: {row.note}" for row in rows if row.note)
    md_path.write_text(
        f"# deskphone benchmarks, {data['when']}\n\n{runs} runs per figure on "
        f"{data['cpus']} CPUs ({data['machine']}); medians with the min–max spread.\n\n"
        f"{markdown_table(rows)}\n\n{notes}\n"
    )
    return json_path, md_path
