"""What the benchmark scripts share: where results go, how a run names its date and machine,
how ``--flow-param key=value`` is read, and how a run's report is written."""

from __future__ import annotations

import argparse
import ast
import json
import os
import platform
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
RESULTS_DIR = ROOT / "benchmarks" / "results"


def utc_now() -> str:
    """The current time, as the reports print it (``2026-12-08 01:50 UTC``)."""
    return datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")


def machine() -> str:
    """Architecture, CPU count, Python and torch versions: what a report's timings ran on."""
    import torch

    return (
        f"{platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}, "
        f"torch {torch.__version__}"
    )


def parse_param(text: str) -> tuple[str, Any]:
    """Parse ``key=value`` into a keyword argument with a Python-typed value.

    ``8`` -> 8, ``1e-3`` -> 0.001, ``128,128`` -> (128, 128), ``true``/``false``/``none``
    -> True/False/None; anything that is not a Python literal stays a string.
    """
    if "=" not in text:
        raise argparse.ArgumentTypeError(f"expected key=value, got {text!r}")
    key, raw = (part.strip() for part in text.split("=", 1))
    special = {"true": True, "false": False, "none": None}
    if raw.lower() in special:
        return key, special[raw.lower()]
    try:
        value = ast.literal_eval(raw)  # handles ints, floats and "128,128" tuples
    except (ValueError, SyntaxError):
        value = raw
    return key, value


def write_results(stem: str, report: str, data: dict | None = None) -> None:
    """Write ``results/<stem>.md`` (and ``<stem>.json`` with ``data``, git-ignored)."""
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    (RESULTS_DIR / f"{stem}.md").write_text(report)
    if data is not None:
        (RESULTS_DIR / f"{stem}.json").write_text(json.dumps(data, indent=2) + "\n")
    print(f"wrote {RESULTS_DIR / stem}.md" + (" and .json" if data is not None else ""))
