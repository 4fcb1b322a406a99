"""Measure peak RSS of `dalle generate --prompts FILE` for growing prompt files.

Streaming generation keeps memory flat: each batch is written and dropped
before the next one is sampled. This script runs the real CLI as a child
process on 10, 100 and 1,000 distinct prompts and prints the peak resident
set size of each run, as a Markdown table.

    python scripts/measure_stream_memory.py --model weights/dalle-toy.safetensors
"""

from __future__ import annotations

import argparse
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from dalle.model.captions import caption
from dalle.model.toyworld import random_scene


def peak_rss_mb(args: list[str]) -> tuple[float, float]:
    """Run a command to completion; return (peak RSS of that child in MiB, wall seconds)."""
    started = time.monotonic()
    process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _, status, usage = os.wait4(process.pid, 0)
    if status != 0:
        raise SystemExit(f"command failed with status {status}: {' '.join(args)}")
    return usage.ru_maxrss / 1024, time.monotonic() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, required=True)
    parser.add_argument("--counts", type=int, nargs="+", default=[10, 100, 1000])
    args = parser.parse_args()

    rng = random.Random(0)
    print("| prompts | images | peak RSS (MiB) | wall (s) |")
    print("|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        for count in args.counts:
            prompts = Path(tmp) / f"prompts-{count}.txt"
            prompts.write_text(
                "\n".join(caption(random_scene(rng), rng) for _ in range(count)) + "\n", encoding="utf-8"
            )
            command = [
                sys.executable,
                "-m",
                "dalle.cli",
                "generate",
                "--prompts",
                str(prompts),
                "-n",
                "1",
                "--seed",
                "0",
                "--batch-size",
                "16",
                "--model",
                str(args.model),
                "--out-dir",
                str(Path(tmp) / f"out-{count}"),
                "--quiet",
            ]
            rss, wall = peak_rss_mb(command)
            print(f"| {count} | {count} | {rss:.0f} | {wall:.0f} |", flush=True)


if __name__ == "__main__":
    main()
