"""Shared by the benchmarks: summaries of repeated runs and the results files."""

from __future__ import annotations

import json
import statistics
import time
from pathlib import Path
from typing import Any

RESULTS_DIR = Path(__file__).resolve().parent / "results"


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


def write_results(name: str, figures: dict[str, Any]) -> Path:
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    path = RESULTS_DIR / f"{name}.json"
    path.write_text(
        json.dumps({"benchmark": name, "when": time.time(), "figures": figures}, indent=2)
    )
    return path


def print_table(figures: dict[str, dict[str, Any]]) -> None:
    print(f"{'figure':<34} {'median':>10} {'min':>10} {'max':>10}  unit")
    for name, f in figures.items():
        print(f"{name:<34} {f['median']:>10.4g} {f['min']:>10.4g} {f['max']:>10.4g}  {f['unit']}")
