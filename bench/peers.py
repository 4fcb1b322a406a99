"""`make bench-peers`: dalle-pytorch 1.6.6 against our sampler and training step, in one process.

Runs inside .venv-peers, where dalle-pytorch and its pinned dependencies import on
torch 2.13.0 next to an editable install of this repository. Both sides get random
weights at the dimensions in bench/workloads.py; nothing is downloaded. Results go
to the "peers" section of the JSON results file.

    .venv-peers/bin/python -m bench.peers
    .venv-peers/bin/python -m bench.peers --rounds 1 --batches 1 --max-load 99 --results /tmp/smoke.json
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable
from importlib.metadata import version
from pathlib import Path
from typing import Any

import torch
from dalle.model.config import TransformerConfig, VAEConfig
from dalle.model.transformer import DalleTransformer
from dalle.model.vae import DiscreteVAE

from .timing import REPO_ROOT, log, speedup, start_run, time_side_by_side, update_results
from .workloads import (
    BATCH_SIZES,
    DIMENSIONS,
    GUIDANCE_SCALE,
    TEMPERATURE,
    TOP_K,
    bench_config,
    bench_transformer,
    parameter_count,
    profile_operators,
    random_text,
    sample,
)

# Both VAEs: 64 px images, three stride-2 levels of width 64 without residual blocks,
# 1024 codebook entries of width 256, so both decode an 8x8 grid at equal cost.
VAE_IMAGE_SIZE = 64
VAE_LEVELS = 3
VAE_WIDTH = 64
VAE_CODEBOOK_DIM = 256
TRAIN_BATCH = 16
TRAIN_STEPS_PER_ROUND = 3
LEARNING_RATE = 1e-3


def build_peer(config: TransformerConfig) -> Any:
    """dalle-pytorch's DALLE with its defaults (rotary embeddings, token shift, GEGLU), at our dimensions."""
    from dalle_pytorch import DALLE
    from dalle_pytorch import DiscreteVAE as PeerVAE

    torch.manual_seed(0)
    vae = PeerVAE(
        image_size=VAE_IMAGE_SIZE,
        num_tokens=config.image_vocab_size,
        codebook_dim=VAE_CODEBOOK_DIM,
        num_layers=VAE_LEVELS,
        hidden_dim=VAE_WIDTH,
    )
    return DALLE(
        dim=config.n_embd,
        vae=vae,
        num_text_tokens=config.text_vocab_size,
        text_seq_len=config.text_len,
        depth=config.n_layer,
        heads=config.n_head,
        dim_head=config.n_embd // config.n_head,  # attention width = model width, as in ours
    ).eval()


def build_our_vae(config: TransformerConfig) -> DiscreteVAE:
    torch.manual_seed(0)
    vae_config = VAEConfig(
        image_size=VAE_IMAGE_SIZE,
        hidden_dims=(VAE_WIDTH,) * VAE_LEVELS,
        num_res_blocks=0,
        codebook_size=config.image_vocab_size,
        codebook_dim=VAE_CODEBOOK_DIM,
    )
    return DiscreteVAE(vae_config).eval()


def our_generate(model: DalleTransformer, vae: DiscreteVAE, text: torch.Tensor) -> torch.Tensor:
    """Our equivalent of generate_images: sample image tokens with guidance, then decode them to pixels."""
    tokens = sample(model, text)
    grid = model.config.grid_size
    with torch.inference_mode():
        return vae.decode(tokens.view(-1, grid, grid))


def peer_generate(peer: Any, text: torch.Tensor) -> torch.Tensor:
    """dalle-pytorch 1.6.6 generate_images with its cache and guidance on; filter_thres=0.5 keeps half the logits."""
    return peer.generate_images(text, cond_scale=GUIDANCE_SCALE, use_cache=True, temperature=TEMPERATURE)


def bench_sampling(
    model: DalleTransformer, vae: DiscreteVAE, peer: Any, batches: list[int], rounds: int, slow_rounds: int
) -> dict[str, Any]:
    results: dict[str, Any] = {}
    for batch in batches:
        text = random_text(model.config, batch, seed=batch)
        batch_rounds = slow_rounds if batch >= 32 else rounds
        log(f"sampling at batch {batch}: {batch_rounds} rounds of ours and dalle-pytorch")
        timings = time_side_by_side(
            {
                "ours": lambda text=text: our_generate(model, vae, text),
                "dalle_pytorch": lambda text=text: peer_generate(peer, text),
            },
            batch_rounds,
        )
        results[str(batch)] = {
            "timings": {name: timing.to_json() for name, timing in timings.items()},
            "speedup": speedup(timings["ours"], timings["dalle_pytorch"]),
        }
    return results


def bench_decode(model: DalleTransformer, vae: DiscreteVAE, peer: Any, batch: int, rounds: int) -> dict[str, Any]:
    """VAE decode alone, included in both generate figures: shows how much of them it is."""
    generator = torch.Generator().manual_seed(3)
    config = model.config
    codes = torch.randint(0, config.image_vocab_size, (batch, config.image_len), generator=generator)
    grid = config.grid_size

    def ours() -> torch.Tensor:
        with torch.inference_mode():
            return vae.decode(codes.view(-1, grid, grid))

    def theirs() -> torch.Tensor:
        with torch.no_grad():
            return peer.vae.decode(codes)

    timings = time_side_by_side({"ours": ours, "dalle_pytorch": theirs}, rounds)
    return {"batch": batch, "timings": {name: timing.to_json() for name, timing in timings.items()}}


def training_step(model: torch.nn.Module, loss_fn: Callable[[], torch.Tensor]) -> Callable[[], None]:
    """Build a closure that takes TRAIN_STEPS_PER_ROUND AdamW steps the way our trainer does.

    Each step zeroes the gradients, runs backward, clips the gradient norm to 1 and steps.
    """
    parameters = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(parameters, lr=LEARNING_RATE, betas=(0.9, 0.95), weight_decay=0.01)

    def step() -> None:
        for _ in range(TRAIN_STEPS_PER_ROUND):
            loss = loss_fn()
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(parameters, 1.0)
            optimizer.step()

    return step


def training_batch(config: TransformerConfig) -> tuple[torch.Tensor, torch.Tensor]:
    """Random text segments and image codes at batch TRAIN_BATCH."""
    text = random_text(config, TRAIN_BATCH, seed=11)
    generator = torch.Generator().manual_seed(11)
    image = torch.randint(0, config.image_vocab_size, (TRAIN_BATCH, config.image_len), generator=generator)
    return text, image


def bench_training(peer: Any, rounds: int, autocast: bool) -> dict[str, Any]:
    """Training steps at batch TRAIN_BATCH on random text and image codes, ours and dalle-pytorch's."""
    model = bench_transformer().train()
    peer.train()
    text, image = training_batch(model.config)

    def ours() -> torch.Tensor:
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
            return model.loss(text, image).loss

    def theirs() -> torch.Tensor:
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
            return peer(text, image, return_loss=True)

    label = "bfloat16 autocast" if autocast else "float32"
    log(f"training at batch {TRAIN_BATCH} ({label}): {rounds} rounds of {TRAIN_STEPS_PER_ROUND} steps each side")
    steps = {"ours": training_step(model, ours), "dalle_pytorch": training_step(peer, theirs)}
    timings = time_side_by_side(steps, rounds)
    peer.eval()
    samples = TRAIN_BATCH * TRAIN_STEPS_PER_ROUND
    return {
        "batch": TRAIN_BATCH,
        "steps_per_round": TRAIN_STEPS_PER_ROUND,
        "samples_per_round": samples,
        "timings": {name: timing.to_json() for name, timing in timings.items()},
        "speedup": speedup(timings["ours"], timings["dalle_pytorch"]),
    }


def training_profile() -> dict[str, Any]:
    """Top operators of our float32 training steps (one timed round of them), after one warm-up round."""
    model = bench_transformer().train()
    text, image = training_batch(model.config)
    step = training_step(model, lambda: model.loss(text, image).loss)
    step()
    return {"batch": TRAIN_BATCH, "steps": TRAIN_STEPS_PER_ROUND, "rows": profile_operators(step, 15)}


def peer_parameters(peer: Any) -> int:
    """Parameters of the DALLE transformer, without its VAE."""
    vae = {id(p) for p in peer.vae.parameters()}
    return sum(p.numel() for p in peer.parameters() if id(p) not in vae)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--results", type=Path, default=REPO_ROOT / "docs" / "benchmarks.json", help="JSON file.")
    parser.add_argument("--rounds", type=int, default=5, help="Timed rounds per side-by-side group.")
    parser.add_argument("--slow-rounds", type=int, default=3, help="Timed rounds at batch 32.")
    parser.add_argument(
        "--batches", default=",".join(map(str, BATCH_SIZES)), help="Comma-separated batch sizes for sampling."
    )
    parser.add_argument(
        "--max-load", type=float, default=1.0, help="Exit at start when the 1-minute load average is above this."
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    batches, facts = start_run(args.max_load, args.batches)

    config = bench_config()
    model = bench_transformer()
    vae = build_our_vae(config)
    peer = build_peer(config)
    results: dict[str, Any] = {
        "machine": facts,
        "versions": {
            name: version(name) for name in ("dalle-pytorch", "torch", "transformers", "pytorch-lightning", "einops")
        },
        "dimensions": DIMENSIONS,
        "settings": {"guidance_scale": GUIDANCE_SCALE, "top_k": TOP_K, "temperature": TEMPERATURE},
        "vae": {
            "image_size": VAE_IMAGE_SIZE,
            "levels": VAE_LEVELS,
            "width": VAE_WIDTH,
            "codebook_dim": VAE_CODEBOOK_DIM,
        },
        "parameters": {"ours": parameter_count(model), "dalle_pytorch": peer_parameters(peer)},
        "rounds": {"default": args.rounds, "batch_32": args.slow_rounds},
    }
    results["sampling"] = bench_sampling(model, vae, peer, batches, args.rounds, args.slow_rounds)
    results["decode"] = bench_decode(model, vae, peer, max(batches), args.rounds)
    results["training"] = bench_training(peer, args.rounds, autocast=False)
    results["training_bf16"] = bench_training(peer, args.rounds, autocast=True)
    log("profile of our training steps")
    results["training_profile"] = training_profile()
    results["machine"]["load_average_end"] = list(os.getloadavg())
    update_results(args.results, "peers", results)
    log(f"wrote the 'peers' section of {args.results}")


if __name__ == "__main__":
    main()
