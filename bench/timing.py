"""Timing helpers shared by bench/run.py and bench/peers.py.

Workloads that are compared run interleaved in one process. After a warm-up, each
round runs every workload once, and the order rotates from round to round. A burst
of load on the machine then hits all sides of a ratio alike.
"""

from __future__ import annotations

import datetime
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent


@dataclass
class Timing:
    """Wall-clock seconds of the timed runs of one workload, in round order."""

    seconds: list[float]

    @property
    def median(self) -> float:
        return statistics.median(self.seconds)

    def to_json(self) -> dict[str, Any]:
        return {
            "median_s": self.median,
            "min_s": min(self.seconds),
            "max_s": max(self.seconds),
            "seconds": self.seconds,
        }


def time_side_by_side(workloads: dict[str, Callable[[], object]], rounds: int, warmup: int = 1) -> dict[str, Timing]:
    """Time each workload `rounds` times, interleaved, after `warmup` untimed runs of each."""
    if rounds < 1:
        raise ValueError(f"invalid rounds={rounds}: must be >= 1")
    names = list(workloads)
    for _ in range(warmup):
        for name in names:
            workloads[name]()
    seconds: dict[str, list[float]] = {name: [] for name in names}
    for round_index in range(rounds):
        shift = round_index % len(names)
        for name in names[shift:] + names[:shift]:
            started = time.perf_counter()
            workloads[name]()
            seconds[name].append(time.perf_counter() - started)
    return {name: Timing(values) for name, values in seconds.items()}


def speedup(fast: Timing, slow: Timing) -> dict[str, float]:
    """Ratio slow/fast of median times, with the min and max of the per-round ratios."""
    per_round = [s / f for f, s in zip(fast.seconds, slow.seconds, strict=True)]
    return {"median": slow.median / fast.median, "min": min(per_round), "max": max(per_round)}


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def cpu_flags() -> list[str]:
    """Return the matmul-related instruction set flags listed in /proc/cpuinfo."""
    wanted = ("avx2", "avx512f", "avx512_bf16", "avx512_vnni", "amx_bf16", "amx_tile")
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                present = set(line.split(":", 1)[1].split())
                return [flag for flag in wanted if flag in present]
    except OSError:
        pass
    return []


def git_revision() -> str:
    """Short commit hash, with "+dirty" when the working tree has uncommitted changes."""
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=REPO_ROOT, capture_output=True, text=True, check=True
        ).stdout.strip()
        status = subprocess.run(
            ["git", "status", "--porcelain"], cwd=REPO_ROOT, capture_output=True, text=True, check=True
        ).stdout
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return commit + ("+dirty" if status.strip() else "")


def machine_facts() -> dict[str, Any]:
    import torch

    return {
        "date_utc": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "cpu": cpu_model(),
        "cpu_flags": cpu_flags(),
        "logical_cores": os.cpu_count(),
        "usable_cores": len(os.sched_getaffinity(0)),
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "python": platform.python_version(),
        "git": git_revision(),
        "load_average_start": list(os.getloadavg()),
    }


def check_load(max_load: float) -> None:
    """Exit when the 1-minute load average shows other work running, because it would skew the timings."""
    load = os.getloadavg()[0]
    if load > max_load:
        sys.exit(
            f"error: 1-minute load average is {load:.2f}, above --max-load {max_load}; "
            "wait until the machine is idle, or raise --max-load for a smoke run"
        )


def update_results(path: Path, section: str, data: dict[str, Any]) -> None:
    """Replace one top-level section of the JSON results file, keeping the others; write atomically."""
    results: dict[str, Any] = {}
    if path.exists():
        try:
            results = json.loads(path.read_text())
        except json.JSONDecodeError as exc:
            raise SystemExit(f"error: {path} is not valid JSON ({exc}); delete it and rerun both benchmarks") from exc
    results[section] = data
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_suffix(path.suffix + ".tmp")
    temporary.write_text(json.dumps(results, indent=1, ensure_ascii=False) + "\n")
    os.replace(temporary, path)


def log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def start_run(max_load: float, batches: str) -> tuple[list[int], dict[str, Any]]:
    """Shared start of a benchmark script: refuse a busy machine, parse the batch list, log the machine facts."""
    check_load(max_load)
    sizes = [int(value) for value in batches.split(",")]
    facts = machine_facts()
    log(f"{facts['cpu']}, {facts['usable_cores']} cores, torch {facts['torch']}, {facts['torch_threads']} threads")
    return sizes, facts
