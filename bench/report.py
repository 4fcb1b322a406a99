"""Render the JSON results of bench/run.py and bench/peers.py as docs/benchmarks.md.

    python -m bench.report [--results docs/benchmarks.json] [--out docs/benchmarks.md]

Uses only the standard library, so either virtual environment can run it.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent
RSS_LIMIT_BYTES = 1_000_000_000
PROFILE_LINK = "[profile](#where-the-sampling-time-goes)"


# Formatting.
def number(value: float, digits: int | None = None) -> str:
    """Format with `digits` decimals, or by default with three significant digits (at least one decimal)."""
    if digits is None:
        if abs(value) >= 10:
            digits = 1
        elif abs(value) >= 1:
            digits = 2
        else:
            digits = 3
    return f"{value:.{digits}f}"


def spread(median: float, low: float, high: float, digits: int | None = None, unit: str = "") -> str:
    return f"{number(median, digits)}{unit} ({number(low, digits)}–{number(high, digits)})"


def throughput(timing: dict[str, Any], items: int) -> str:
    """Items per second at the median run, with the range from the slowest and fastest runs."""
    return spread(items / timing["median_s"], items / timing["max_s"], items / timing["min_s"])


def seconds(timing: dict[str, Any], digits: int = 2) -> str:
    return spread(timing["median_s"], timing["min_s"], timing["max_s"], digits, " s")


def ratio(value: dict[str, float], digits: int = 2) -> str:
    return spread(value["median"], value["min"], value["max"], digits, "×")


def verdict(met: bool, profile: str = PROFILE_LINK) -> str:
    return "met" if met else f"**missed**; {profile}"


def megabytes(value: float) -> str:
    return f"{value / 1e6:.0f} MB"


class Table:
    def __init__(self, *headers: str) -> None:
        self.lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]

    def add(self, *cells: object) -> None:
        self.lines.append("| " + " | ".join(str(cell) for cell in cells) + " |")

    def render(self) -> str:
        return "\n".join(self.lines)


# Summary rows.
def sampling_rows(table: Table, ours: dict[str, Any] | None, peers: dict[str, Any] | None) -> None:
    if ours is None:
        table.add("sampling images/s", "not measured: `make bench` has not run", "", "", "", "", "")
    else:
        for batch, entry in ours["sampling"].items():
            timings = entry["timings"]
            target = "≥ 10×" if batch == "8" else "—"
            result = verdict(entry["speedup_vs_uncached"]["median"] >= 10) if batch == "8" else "—"
            table.add(
                f"sampling images/s, batch {batch}",
                throughput(timings["cached"], int(batch)),
                "our sampler without KV cache",
                throughput(timings["uncached"], int(batch)),
                ratio(entry["speedup_vs_uncached"]),
                target,
                result,
            )
    if peers is None:
        table.add("sampling images/s", "not measured: `make bench-peers` has not run", "dalle-pytorch", "", "", "", "")
    else:
        for batch, entry in peers["sampling"].items():
            timings = entry["timings"]
            table.add(
                f"sampling + VAE decode images/s, batch {batch}",
                throughput(timings["ours"], int(batch)),
                "dalle-pytorch 1.6.6 `generate_images`",
                throughput(timings["dalle_pytorch"], int(batch)),
                ratio(entry["speedup"]),
                "≥ 2×",
                verdict(entry["speedup"]["median"] >= 2),
            )
    if ours is not None:
        for batch, entry in ours["sampling"].items():
            timings = entry["timings"]
            table.add(
                f"sampling images/s, batch {batch}",
                throughput(timings["cached"], int(batch)),
                "transformers GPT-2 `generate`",
                throughput(timings["gpt2"], int(batch)),
                ratio(entry["speedup_vs_gpt2"]),
                "≥ 1.5×",
                verdict(entry["speedup_vs_gpt2"]["median"] >= 1.5),
            )


def flops_rows(table: Table, ours: dict[str, Any] | None) -> None:
    if ours is None:
        return
    flops = ours["flops"]
    for dtype, entry in flops["achieved"].items():
        peak = flops["peaks"][dtype]["peak_gflops"]
        table.add(
            f"matmul GFLOP/s while sampling at batch {flops['batch']}, {dtype}",
            spread(entry["gflops"], entry["gflops_min"], entry["gflops_max"]),
            f"`torch.mm` peak, {dtype}",
            number(peak),
            f"{entry['share_of_peak']:.0%}",
            "≥ 50%",
            verdict(entry["share_of_peak"] >= 0.5),
        )


def training_rows(table: Table, peers: dict[str, Any] | None) -> None:
    if peers is None:
        table.add("training samples/s", "not measured: `make bench-peers` has not run", "", "", "", "", "")
        return
    for key, label, has_target in (("training", "float32", True), ("training_bf16", "bfloat16 autocast", False)):
        entry = peers[key]
        samples = entry["samples_per_round"]
        table.add(
            f"training samples/s, batch {entry['batch']}, {label}",
            throughput(entry["timings"]["ours"], samples),
            "dalle-pytorch 1.6.6 training step",
            throughput(entry["timings"]["dalle_pytorch"], samples),
            ratio(entry["speedup"]),
            "≥ 1.5×" if has_target else "—",
            verdict(entry["speedup"]["median"] >= 1.5, "[profile](#where-the-training-time-goes)")
            if has_target
            else "—",
        )


def cold_rows(table: Table, ours: dict[str, Any] | None) -> None:
    cold = None if ours is None else ours["cold_start"]
    if cold is None or "timings" not in cold:
        reason = "`make bench` has not run"
        if cold is not None and "missing_model" in cold:
            reason = f"the shipped model {cold['missing_model']} did not exist"
        elif cold is not None and cold.get("skipped"):
            reason = "skipped with --skip-cold"
        table.add('cold `dalle generate "…" -n 1` wall', f"not measured: {reason}", "", "", "", "aim ≤ 2×", "")
        table.add("peak RSS of that run", f"not measured: {reason}", "", "", "", "≤ 1 GB", "")
        return
    timings = cold["timings"]
    table.add(
        'cold `dalle generate "…" -n 1` wall',
        seconds(timings["dalle"]),
        '`python -c "import torch"`',
        seconds(timings["import_torch"]),
        ratio(cold["ratio"]),
        "aim ≤ 2×",
        verdict(cold["ratio"]["median"] <= 2, "[profile](#where-the-cold-start-time-goes)"),
    )
    rss = cold["peak_rss_bytes"]
    table.add(
        "peak RSS of that run",
        f"{megabytes(rss['dalle']['median'])} ({megabytes(rss['dalle']['min'])}–{megabytes(rss['dalle']['max'])})",
        '`python -c "import torch"`',
        megabytes(rss["import_torch"]["median"]),
        "—",
        "≤ 1 GB",
        verdict(rss["dalle"]["max"] <= RSS_LIMIT_BYTES, "[profile](#where-the-cold-start-time-goes)"),
    )


# Detail sections.
def machine_section(ours: dict[str, Any] | None, peers: dict[str, Any] | None) -> str:
    runs = [(name, data["machine"]) for name, data in (("make bench", ours), ("make bench-peers", peers)) if data]
    table = Table("", *(name for name, _ in runs))
    rows: list[tuple[str, Callable[[dict[str, Any]], str]]] = [
        ("date", lambda m: m["date_utc"]),
        ("CPU", lambda m: f"{m['cpu']}, flags {' '.join(m['cpu_flags'])}"),
        ("cores (usable / logical)", lambda m: f"{m['usable_cores']} / {m['logical_cores']}"),
        ("torch, threads", lambda m: f"{m['torch']}, {m['torch_threads']}"),
        ("Python", lambda m: m["python"]),
        ("commit", lambda m: m["git"]),
        ("load average at start (1, 5, 15 min)", lambda m: ", ".join(f"{v:.2f}" for v in m["load_average_start"])),
        ("load average at end", lambda m: ", ".join(f"{v:.2f}" for v in m.get("load_average_end", []))),
    ]
    for label, cell in rows:
        table.add(label, *(cell(machine) for _, machine in runs))
    return table.render()


def setup_section(ours: dict[str, Any] | None, peers: dict[str, Any] | None) -> str:
    source = ours or peers
    if source is None:
        return "No results yet."
    dims = source["dimensions"]
    settings = source["settings"]
    lines = [
        f"- Every model pair: width {dims['n_embd']}, depth {dims['n_layer']}, {dims['n_head']} heads, "
        f"{dims['text_len']} text positions, {dims['grid_size']}×{dims['grid_size']} = "
        f"{dims['grid_size'] ** 2} image tokens, {dims['text_vocab_size']} text and {dims['image_vocab_size']} "
        "image token ids, random weights (seed 0). Nothing is downloaded.",
        f"- Sampling: guidance scale {settings['guidance_scale']}, temperature {settings['temperature']}, "
        f"top-k {settings['top_k']} (half the image vocabulary). Our rows run the conditional and unconditional "
        "text in one doubled batch with the preallocated KV cache; the uncached comparison reruns the whole "
        "sequence at every step. Random full-length prompts, no pads.",
    ]
    if ours is not None:
        lines.append(
            f"- GPT-2: `GPT2LMHeadModel` from transformers {ours['gpt2']['transformers']} "
            f"({ours['gpt2']['attention']} attention), vocabulary {dims['text_vocab_size'] + dims['image_vocab_size']} "
            f"(text plus image ids), {dims['text_len'] + dims['grid_size'] ** 2} positions, "
            f"{ours['parameters']['gpt2']:,} parameters against our {ours['parameters']['ours']:,}. "
            "`generate` samples 64 tokens after the 32-token prompt with `use_cache=True` and "
            "`guidance_scale`, whose unconditional prompt is our bos-plus-pads segment with the pads masked; "
            "transformers runs that unconditional branch as a second forward pass with its own cache."
        )
    if peers is not None:
        versions = peers["versions"]
        vae = peers["vae"]
        lines += [
            f"- dalle-pytorch {versions['dalle-pytorch']} `DALLE` with its defaults (rotary embeddings, token shift, "
            f"GEGLU feed-forward) and `dim_head` = width / heads, so attention is as wide as ours: "
            f"{peers['parameters']['dalle_pytorch']:,} transformer parameters against our "
            f"{peers['parameters']['ours']:,}. `generate_images(text, cond_scale={settings['guidance_scale']}, "
            "use_cache=True)` keeps the top half of its logits (`filter_thres=0.5`) and always decodes with its VAE, "
            "so our side of that row samples and then decodes with our VAE.",
            f"- Both VAEs: {vae['image_size']} px, {vae['levels']} stride-2 levels of width {vae['width']}, no "
            f"residual blocks, codebook width {vae['codebook_dim']}. Decode alone at batch "
            f"{peers['decode']['batch']}: ours {seconds(peers['decode']['timings']['ours'], 3)}, dalle-pytorch "
            f"{seconds(peers['decode']['timings']['dalle_pytorch'], 3)}.",
            "- dalle-pytorch 1.6.6 runs the unconditional pass of guided, cached sampling on a shallow copy of the "
            "conditional cache (`forward_with_cond_scale` in dalle_pytorch.py), so after the first image token its "
            "unconditional logits attend to the conditional prompt's keys. Its cost per token is two single-token "
            "passes of the batch, the same work as our one pass over the doubled batch.",
            f"- Training: batch {peers['training']['batch']}, random text and image codes, "
            f"{peers['training']['steps_per_round']} optimizer steps per timed round (AdamW, lr 1e-3, gradient norm "
            "clipped to 1) for each model; both losses cover text and image tokens.",
            f"- Peers environment (`make bench-peers`, .venv-peers): torch {versions['torch']}, transformers "
            f"{versions['transformers']}, pytorch-lightning {versions['pytorch-lightning']}, einops "
            f"{versions['einops']}. torchvision is absent: bench/stubs/torchvision stands in for it and raises on "
            "any use, so no timed path touches it.",
        ]
    lines.append(
        "- Matmul FLOPs are counted with `torch.utils.flop_counter` over one sampling call (linear layers and "
        "attention; elementwise work not counted). The peak is the best median GFLOP/s of square `torch.mm` "
        "at sizes 1024 and 2048, measured in the same process."
    )
    lines.append(
        "- Cold start: each run is a new process, timed from fork to exit by a small launcher (bench/run.py), "
        "with the OS file cache warm (one untimed run of each command first). Peak RSS is that process's "
        "`ru_maxrss` from `wait4`."
    )
    return "\n".join(lines)


def profile_section(ours: dict[str, Any] | None) -> str:
    if ours is None:
        return "Not measured: `make bench` has not run."
    operators = ours["profiles"]["operators"]
    table = Table("operator", "calls", "self time", "share")
    for row in operators["rows"]:
        table.add(f"`{row['name']}`", row["calls"], f"{row['self_ms']:.1f} ms", f"{row['share']:.1%}")
    python = ours["profiles"]["python"]
    python_table = Table("function", "calls", "own time", "cumulative", "share of own time")
    for row in python["rows"]:
        python_table.add(
            f"`{row['where']}`",
            row["calls"],
            f"{row['own_s'] * 1000:.1f} ms",
            f"{row['cumulative_s'] * 1000:.1f} ms",
            f"{row['share']:.1%}",
        )
    return "\n\n".join(
        [
            f"Operators by self CPU time (`torch.profiler`), one cached sampling call at batch {operators['batch']}:",
            table.render(),
            f"Python functions by own time (`cProfile`), one cached sampling call at batch {python['batch']} "
            f"({python['total_s']:.2f} s under the profiler):",
            python_table.render(),
        ]
    )


def bfloat16_section(ours: dict[str, Any] | None) -> str:
    if ours is None:
        return "Not measured: `make bench` has not run."
    flops = ours["flops"]
    agreement = flops["bfloat16_logits"]
    achieved = flops["achieved"]
    peaks = flops["peaks"]
    peak_table = Table("matmul size", "float32 GFLOP/s", "bfloat16 GFLOP/s")
    for size in peaks["float32"]["sizes"]:
        fp32 = peaks["float32"]["sizes"][size]
        bf16 = peaks["bfloat16"]["sizes"][size]
        peak_table.add(
            f"{size}×{size}",
            spread(fp32["gflops_median"], fp32["gflops_min"], fp32["gflops_max"]),
            spread(bf16["gflops_median"], bf16["gflops_min"], bf16["gflops_max"]),
        )
    return "\n\n".join(
        [
            f"Cached sampling at batch {flops['batch']} with the whole model cast to bfloat16, side by side with "
            f"float32: {throughput(achieved['bfloat16']['timing'], flops['batch'])} against "
            f"{throughput(achieved['float32']['timing'], flops['batch'])} images/s, "
            f"{ratio(flops['bfloat16_speedup'])}. {flops['flops_per_call'] / 1e9:.1f} GFLOP per call.",
            f"Image logits of one teacher-forced pass at batch 8, bfloat16 against float32: max absolute difference "
            f"{agreement['max_abs_diff']:.4f} (the float32 logits have standard deviation "
            f"{agreement['logit_std']:.3f}); the most likely token agrees at {agreement['argmax_agreement']:.1%} of "
            "positions.",
            peak_table.render(),
        ]
    )


def training_profile_section(peers: dict[str, Any] | None) -> str:
    if peers is None or "training_profile" not in peers:
        return "Not measured: `make bench-peers` has not run."
    profile = peers["training_profile"]
    table = Table("operator", "calls", "self time", "share")
    for row in profile["rows"]:
        table.add(f"`{row['name']}`", row["calls"], f"{row['self_ms']:.1f} ms", f"{row['share']:.1%}")
    return (
        f"Operators by self CPU time (`torch.profiler`), {profile['steps']} of our float32 training steps at "
        f"batch {profile['batch']}:\n\n{table.render()}"
    )


def cold_profile_section(ours: dict[str, Any] | None) -> str:
    cold = None if ours is None else ours["cold_start"]
    if cold is None or "profile" not in cold:
        return "Not measured."
    profile = cold["profile"]
    table = Table("function", "calls", "cumulative", "share of the run")
    for row in profile["rows"]:
        table.add(f"`{row['where']}`", row["calls"], f"{row['cumulative_s']:.2f} s", f"{row['share']:.0%}")
    return (
        f"`python -m cProfile` over one `{cold['commands']['dalle']}` run ({profile['total_s']:.2f} s under the "
        f"profiler), functions by cumulative time:\n\n{table.render()}"
    )


def render(results: dict[str, Any]) -> str:
    ours = results.get("ours")
    peers = results.get("peers")
    summary = Table("figure", "ours", "compared with", "their figure", "ratio", "target", "result")
    sampling_rows(summary, ours, peers)
    flops_rows(summary, ours)
    training_rows(summary, peers)
    cold_rows(summary, ours)
    rounds = (ours or peers or {}).get("rounds", {})
    sections = [
        "# Benchmarks",
        "Speed of sampling, training and the cold CLI on a 2-core CPU, against our own uncached sampler, "
        "dalle-pytorch 1.6.6 and transformers' GPT-2. `make bench` (bench/run.py) and `make bench-peers` "
        "(bench/peers.py, in a separate environment with the peers installed) write docs/benchmarks.json; "
        "bench/report.py renders this page from it.",
        f"Each figure is the median of {rounds.get('default', '?')} timed runs ({rounds.get('batch_32', '?')} at "
        f"batch 32, {rounds.get('cold', '?')} for the cold start) after one untimed warm-up, with the min–max "
        "range in brackets. Every ratio compares two workloads timed in the same process, interleaved round by "
        "round, and its range is the min–max of the per-round ratios. Throughput in images/s or samples/s.",
        "## Summary",
        summary.render(),
        "## Setup",
        setup_section(ours, peers),
        "## Machine",
        machine_section(ours, peers),
        "Each run checks the 1-minute load average only at its start (`BENCH_MAX_LOAD` in the Makefile, default "
        "1.0). That average decays over minutes, so a run started right after the other one shows the first "
        "run's own load.",
        "## Where the sampling time goes",
        profile_section(ours),
        "## bfloat16",
        bfloat16_section(ours),
        "## Where the training time goes",
        training_profile_section(peers),
        "## Where the cold start time goes",
        cold_profile_section(ours),
    ]
    return "\n\n".join(sections) + "\n"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--results", type=Path, default=REPO_ROOT / "docs" / "benchmarks.json", help="JSON file.")
    parser.add_argument("--out", type=Path, default=REPO_ROOT / "docs" / "benchmarks.md", help="Markdown page.")
    args = parser.parse_args(argv)
    if not args.results.exists():
        raise SystemExit(f"error: {args.results} not found; run `make bench` and `make bench-peers` first")
    results = json.loads(args.results.read_text())
    args.out.write_text(render(results))
    print(args.out)


if __name__ == "__main__":
    main()
