"""`make bench`: our sampler against its uncached path and GPT-2, FLOP/s against the matmul peak, cold CLI start.

Every ratio comes from workloads timed side by side in this one process (see
bench/timing.py). Results go to the "ours" section of the JSON results file,
which bench/report.py turns into docs/benchmarks.md.

    .venv/bin/python -m bench.run                         # full run, about 5 minutes on 2 cores
    .venv/bin/python -m bench.run --rounds 1 --batches 1 --max-load 99 --results /tmp/smoke.json
"""

from __future__ import annotations

import argparse
import copy
import cProfile
import os
import pstats
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import torch
from dalle.model.config import TransformerConfig
from dalle.model.pipeline import default_model_path
from dalle.model.transformer import DalleTransformer

from .timing import (
    REPO_ROOT,
    Timing,
    log,
    speedup,
    start_run,
    time_side_by_side,
    update_results,
)
from .workloads import (
    BATCH_SIZES,
    DIMENSIONS,
    GUIDANCE_SCALE,
    TEMPERATURE,
    TOP_K,
    bench_transformer,
    count_flops,
    empty_text,
    parameter_count,
    profile_operators,
    random_text,
    sample,
)

COLD_PROMPT = "orange dinosaur in a suit"
MATMUL_SIZES = (1024, 2048)
PROFILE_ROWS = 15


# Matmul peak of this machine.
def matmul_peak(dtype: torch.dtype, rounds: int) -> dict[str, Any]:
    """GFLOP/s of square torch.mm at a few sizes; the peak is the best median."""
    sizes: dict[str, Any] = {}
    for n in MATMUL_SIZES:
        a = torch.randn(n, n, dtype=dtype)
        b = torch.randn(n, n, dtype=dtype)
        out = torch.empty(n, n, dtype=dtype)
        timing = time_side_by_side({"mm": lambda a=a, b=b, out=out: torch.mm(a, b, out=out)}, rounds, warmup=2)["mm"]
        flops = 2 * n**3
        sizes[str(n)] = {
            "gflops_median": flops / timing.median / 1e9,
            "gflops_min": flops / max(timing.seconds) / 1e9,
            "gflops_max": flops / min(timing.seconds) / 1e9,
        }
    return {"sizes": sizes, "peak_gflops": max(size["gflops_median"] for size in sizes.values())}


# transformers' GPT-2 at the same width, depth, heads and sequence length.
def build_gpt2(config: TransformerConfig) -> Any:
    from transformers import GPT2Config, GPT2LMHeadModel

    gpt2_config = GPT2Config(
        vocab_size=config.text_vocab_size + config.image_vocab_size,
        n_positions=config.text_len + config.image_len,
        n_embd=config.n_embd,
        n_layer=config.n_layer,
        n_head=config.n_head,
        bos_token_id=config.bos_token_id,
        eos_token_id=None,
        pad_token_id=config.pad_token_id,
    )
    torch.manual_seed(0)
    return GPT2LMHeadModel(gpt2_config).eval()


def gpt2_generate(model: Any, text: torch.Tensor, empty: torch.Tensor, image_len: int) -> torch.Tensor:
    """Sample image_len tokens after each text row, with transformers' own classifier-free guidance.

    The unconditional prompt is the same bos-plus-pads segment our sampler uses, with the
    pads masked out, so both models attend over the same number of real positions.
    """
    batch = text.shape[0]
    negative = empty.expand(batch, -1)
    return model.generate(
        input_ids=text,
        attention_mask=torch.ones_like(text),
        negative_prompt_ids=negative,
        negative_prompt_attention_mask=(negative != model.config.pad_token_id).long(),
        guidance_scale=GUIDANCE_SCALE,
        do_sample=True,
        temperature=TEMPERATURE,
        top_k=TOP_K,
        max_new_tokens=image_len,
        min_new_tokens=image_len,
        use_cache=True,
        pad_token_id=model.config.pad_token_id,
    )


def bench_sampling(
    model: DalleTransformer, gpt2: Any, batches: list[int], rounds: int, slow_rounds: int
) -> dict[str, Any]:
    """Cached sampler, uncached sampler and GPT-2 generate, side by side at each batch size."""
    config = model.config
    empty = empty_text(config)
    results: dict[str, Any] = {}
    for batch in batches:
        text = random_text(config, batch, seed=batch)
        workloads = {
            "cached": lambda text=text: sample(model, text),
            "uncached": lambda text=text: sample(model, text, use_cache=False),
            "gpt2": lambda text=text: gpt2_generate(gpt2, text, empty, config.image_len),
        }
        batch_rounds = slow_rounds if batch >= 32 else rounds
        log(f"sampling at batch {batch}: {batch_rounds} rounds of cached, uncached and GPT-2")
        timings = time_side_by_side(workloads, batch_rounds)
        results[str(batch)] = {
            "timings": {name: timing.to_json() for name, timing in timings.items()},
            "speedup_vs_uncached": speedup(timings["cached"], timings["uncached"]),
            "speedup_vs_gpt2": speedup(timings["cached"], timings["gpt2"]),
        }
    return results


# Achieved FLOP/s at batch 32, in float32 and bfloat16.
def logits_agreement(model: DalleTransformer, model_bf16: DalleTransformer, batch: int) -> dict[str, float]:
    """Compare bfloat16 and float32 image logits of one teacher-forced pass over random tokens."""
    config = model.config
    text = random_text(config, batch, seed=7)
    generator = torch.Generator().manual_seed(7)
    image = torch.randint(0, config.image_vocab_size, (batch, config.image_len), generator=generator)
    with torch.inference_mode():
        reference = model(text, image)[1]
        approximate = model_bf16(text, image)[1].float()
    return {
        "max_abs_diff": float((reference - approximate).abs().max()),
        "logit_std": float(reference.std()),
        "argmax_agreement": float((reference.argmax(-1) == approximate.argmax(-1)).float().mean()),
    }


def bench_flops(model: DalleTransformer, batch: int, rounds: int, peak_rounds: int) -> dict[str, Any]:
    """Matmul FLOP/s of cached sampling at `batch` in float32 and bfloat16, and the matmul peaks of both."""
    model_bf16 = copy.deepcopy(model).to(torch.bfloat16)
    text = random_text(model.config, batch, seed=batch)
    log(f"matmul peak, float32 and bfloat16, sizes {MATMUL_SIZES}")
    with torch.inference_mode():
        peaks = {
            "float32": matmul_peak(torch.float32, peak_rounds),
            "bfloat16": matmul_peak(torch.bfloat16, peak_rounds),
        }
    flops = count_flops(lambda: sample(model, text))
    log(f"sampling FLOP/s at batch {batch}: {rounds} rounds of float32 and bfloat16")
    timings = time_side_by_side(
        {"float32": lambda: sample(model, text), "bfloat16": lambda: sample(model_bf16, text)}, rounds
    )
    achieved: dict[str, Any] = {}
    for dtype, timing in timings.items():
        gflops = flops / timing.median / 1e9
        achieved[dtype] = {
            "timing": timing.to_json(),
            "gflops": gflops,
            "gflops_min": flops / max(timing.seconds) / 1e9,
            "gflops_max": flops / min(timing.seconds) / 1e9,
            "share_of_peak": gflops / peaks[dtype]["peak_gflops"],
        }
    return {
        "batch": batch,
        "flops_per_call": flops,
        "peaks": peaks,
        "achieved": achieved,
        "bfloat16_speedup": speedup(timings["bfloat16"], timings["float32"]),
        "bfloat16_logits": logits_agreement(model, model_bf16, batch=8),
    }


# Where the sampling time goes.
def operator_profile(model: DalleTransformer, batch: int) -> list[dict[str, Any]]:
    """Top torch operators by self CPU time during one cached sampling call."""
    text = random_text(model.config, batch, seed=batch)
    sample(model, text)
    return profile_operators(lambda: sample(model, text), PROFILE_ROWS)


def _where(filename: str, line: int, function: str) -> str:
    """Format a profile entry as path:line(function), relative to the repository or to site-packages."""
    if filename == "~":
        return function
    path = Path(filename)
    if "site-packages" in path.parts:
        return f"{Path(*path.parts[path.parts.index('site-packages') + 1 :])}:{line}({function})"
    if path.is_absolute() and path.is_relative_to(REPO_ROOT):
        return f"{path.relative_to(REPO_ROOT)}:{line}({function})"
    return f"{path.name}:{line}({function})"


def stats_rows(stats: pstats.Stats, key: int, total: float) -> list[dict[str, Any]]:
    """Return the PROFILE_ROWS entries with the largest value at `key` (2: own time, 3: cumulative time)."""
    entries = stats.stats  # type: ignore[attr-defined]
    rows = sorted(entries.items(), key=lambda item: item[1][key], reverse=True)[:PROFILE_ROWS]
    return [
        {
            "where": _where(*where),
            "calls": value[1],
            "own_s": value[2],
            "cumulative_s": value[3],
            "share": value[key] / total,
        }
        for where, value in rows
    ]


def python_profile(model: DalleTransformer, batch: int) -> dict[str, Any]:
    """Top Python functions by own time (cProfile) during one cached sampling call."""
    text = random_text(model.config, batch, seed=batch)
    sample(model, text)
    profiler = cProfile.Profile()
    profiler.enable()
    sample(model, text)
    profiler.disable()
    stats = pstats.Stats(profiler)
    total = sum(entry[2] for entry in stats.stats.values())  # type: ignore[attr-defined]
    return {"total_s": total, "rows": stats_rows(stats, key=2, total=total)}


# Cold start of the CLI.
# Linux carries a process's RSS high-water mark across exec, so a command spawned straight
# from this process (over 1 GB by now) would report this process's peak. This small
# launcher forks the command instead, times it and writes "seconds maxrss_kib" to argv[1].
LAUNCHER = """
import os, sys, time
started = time.perf_counter()
pid = os.fork()
if pid == 0:
    os.execvp(sys.argv[2], sys.argv[2:])
_, status, usage = os.wait4(pid, 0)
seconds = time.perf_counter() - started
with open(sys.argv[1], "w") as report:
    report.write(f"{seconds} {usage.ru_maxrss}")
sys.exit(os.waitstatus_to_exitcode(status))
"""


def run_child(command: list[str], folder: Path, name: str) -> tuple[float, int]:
    """Run a command to completion through LAUNCHER; return its wall seconds and peak RSS in bytes."""
    report_path = folder / f"{name}.usage"
    stderr_path = folder / f"{name}.stderr"
    with stderr_path.open("wb") as stderr:
        process = subprocess.run(
            [sys.executable, "-S", "-c", LAUNCHER, str(report_path), *command],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=stderr,
            check=False,
        )
    if process.returncode != 0:
        message = stderr_path.read_text(errors="replace")[-2000:]
        raise RuntimeError(f"{' '.join(command)} failed with exit status {process.returncode}:\n{message}")
    seconds, max_rss_kib = report_path.read_text().split()
    return float(seconds), int(max_rss_kib) * 1024  # ru_maxrss is in KiB on Linux


def cold_start_profile(command: list[str], folder: Path) -> dict[str, Any]:
    """Functions by cumulative time in one extra, untimed CLI run under `python -m cProfile`."""
    stats_path = folder / "cold.prof"
    log("cold start: one more run under cProfile")
    run_child([sys.executable, "-m", "cProfile", "-o", str(stats_path), *command], folder, "profile")
    stats = pstats.Stats(str(stats_path))
    total = stats.total_tt  # type: ignore[attr-defined]
    return {"total_s": total, "rows": stats_rows(stats, key=3, total=total)}


def bench_cold_start(rounds: int) -> dict[str, Any]:
    """`dalle generate PROMPT -n 1` against `python -c "import torch"`, each a new process, interleaved."""
    model_path = default_model_path()
    shown_path = str(model_path.relative_to(REPO_ROOT)) if model_path.is_relative_to(REPO_ROOT) else str(model_path)
    if not model_path.exists():
        return {"missing_model": shown_path}
    dalle = Path(sys.executable).with_name("dalle")
    with tempfile.TemporaryDirectory(prefix="dalle-bench-") as folder:
        out_dir = Path(folder) / "images"
        commands = {
            "dalle": [str(dalle), "generate", COLD_PROMPT, "-n", "1", "--seed", "0", "--out-dir", str(out_dir)],
            "import_torch": [sys.executable, "-c", "import torch"],
        }
        log(f"cold start: {rounds} rounds of `dalle generate -n 1` and `python -c 'import torch'`")
        for name, command in commands.items():  # warm-up: fills the OS file cache
            run_child(command, Path(folder), name)
        seconds: dict[str, list[float]] = {name: [] for name in commands}
        peak_rss: dict[str, list[int]] = {name: [] for name in commands}
        names = list(commands)
        for round_index in range(rounds):  # interleaved, in rotating order, as in time_side_by_side
            shift = round_index % len(names)
            for name in names[shift:] + names[:shift]:
                wall, rss = run_child(commands[name], Path(folder), name)
                seconds[name].append(wall)
                peak_rss[name].append(rss)
        timings = {name: Timing(values) for name, values in seconds.items()}
        written = len(list(out_dir.glob("*.png")))
        if written != rounds + 1:  # one warm-up run, then the timed rounds
            raise RuntimeError(f"dalle generate wrote {written} images in {rounds + 1} runs; expected one per run")
        profile = cold_start_profile(commands["dalle"], Path(folder))
    return {
        "model": shown_path,
        "model_bytes": model_path.stat().st_size,
        "commands": {
            "dalle": f'dalle generate "{COLD_PROMPT}" -n 1 --seed 0 --out-dir DIR',
            "import_torch": 'python -c "import torch"',
        },
        "timings": {name: timing.to_json() for name, timing in timings.items()},
        "ratio": speedup(timings["import_torch"], timings["dalle"]),
        "profile": profile,
        "peak_rss_bytes": {
            name: {"median": sorted(values)[len(values) // 2], "min": min(values), "max": max(values)}
            for name, values in peak_rss.items()
        },
    }


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--results", type=Path, default=REPO_ROOT / "docs" / "benchmarks.json", help="JSON file.")
    parser.add_argument("--rounds", type=int, default=5, help="Timed rounds per side-by-side group.")
    parser.add_argument(
        "--slow-rounds", type=int, default=3, help="Timed rounds at batch 32, where the uncached sampler is slow."
    )
    parser.add_argument("--cold-rounds", type=int, default=5, help="Timed rounds of the cold CLI start.")
    parser.add_argument(
        "--batches", default=",".join(map(str, BATCH_SIZES)), help="Comma-separated batch sizes for sampling."
    )
    parser.add_argument(
        "--max-load", type=float, default=1.0, help="Exit at start when the 1-minute load average is above this."
    )
    parser.add_argument("--skip-cold", action="store_true", help="Skip the cold CLI start (needs the shipped model).")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    batches, facts = start_run(args.max_load, args.batches)

    model = bench_transformer()
    gpt2 = build_gpt2(model.config)
    results: dict[str, Any] = {
        "machine": facts,
        "dimensions": DIMENSIONS,
        "settings": {"guidance_scale": GUIDANCE_SCALE, "top_k": TOP_K, "temperature": TEMPERATURE},
        "parameters": {"ours": parameter_count(model), "gpt2": parameter_count(gpt2)},
        "gpt2": {"attention": gpt2.config._attn_implementation, "transformers": _transformers_version()},
        "rounds": {"default": args.rounds, "batch_32": args.slow_rounds, "cold": args.cold_rounds},
    }
    results["sampling"] = bench_sampling(model, gpt2, batches, args.rounds, args.slow_rounds)
    flops_batch = max(batches)
    results["flops"] = bench_flops(model, flops_batch, args.rounds, peak_rounds=7)
    log("profiles of one cached sampling call")
    results["profiles"] = {
        "operators": {"batch": flops_batch, "rows": operator_profile(model, flops_batch)},
        "python": {"batch": min(8, flops_batch), **python_profile(model, min(8, flops_batch))},
    }
    # Last, because the shipped model may appear only after the other figures are done.
    results["cold_start"] = {"skipped": True} if args.skip_cold else bench_cold_start(args.cold_rounds)
    results["machine"]["load_average_end"] = list(os.getloadavg())
    update_results(args.results, "ours", results)
    log(f"wrote the 'ours' section of {args.results}")


def _transformers_version() -> str:
    import transformers

    return transformers.__version__


if __name__ == "__main__":
    main()
