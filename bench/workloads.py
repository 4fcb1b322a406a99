"""Our side of every comparison: a random-weight DalleTransformer at the benchmark dimensions.

Every pair in docs/benchmarks.md uses these dimensions: width 256, depth 4, 8 heads,
32 text positions and an 8x8 grid of 64 image tokens, with 1024 text and 1024 image
token ids (the shipped model's vocabulary sizes).
"""

from __future__ import annotations

from typing import Any

import torch
from dalle.model.config import TransformerConfig
from dalle.model.sampling import SamplingSettings, sample_image_tokens
from dalle.model.transformer import DalleTransformer

DIMENSIONS: dict[str, int] = {
    "n_embd": 256,
    "n_layer": 4,
    "n_head": 8,
    "text_len": 32,
    "grid_size": 8,
    "text_vocab_size": 1024,
    "image_vocab_size": 1024,
}
BATCH_SIZES = (1, 8, 32)
GUIDANCE_SCALE = 3.0
# Keep the most likely half of the image vocabulary, like dalle-pytorch's default filter_thres=0.5.
TOP_K = DIMENSIONS["image_vocab_size"] // 2
TEMPERATURE = 1.0


def bench_config() -> TransformerConfig:
    return TransformerConfig(**DIMENSIONS)


def bench_transformer(seed: int = 0) -> DalleTransformer:
    torch.manual_seed(seed)
    return DalleTransformer(bench_config()).eval()


def sampling_settings() -> SamplingSettings:
    return SamplingSettings(temperature=TEMPERATURE, top_k=TOP_K, guidance_scale=GUIDANCE_SCALE)


def random_text(config: TransformerConfig, batch: int, seed: int = 0) -> torch.Tensor:
    """Text segments (B, L): bos, then random non-pad caption ids, so every position is a real token."""
    generator = torch.Generator().manual_seed(seed)
    ids = torch.randint(2, config.text_vocab_size, (batch, config.text_len), generator=generator)
    ids[:, 0] = config.bos_token_id
    return ids


def empty_text(config: TransformerConfig) -> torch.Tensor:
    """Return the unconditional text segment (L,): bos followed by pads."""
    ids = torch.full((config.text_len,), config.pad_token_id, dtype=torch.long)
    ids[0] = config.bos_token_id
    return ids


def sample(model: DalleTransformer, text: torch.Tensor, use_cache: bool = True) -> torch.Tensor:
    """Sample image tokens with guidance for every row of `text`; row i uses seed i."""
    seeds = list(range(text.shape[0]))
    return sample_image_tokens(model, text, empty_text(model.config), seeds, sampling_settings(), use_cache=use_cache)


def _attention_flops(query: Any, key: Any, value: Any, *args: Any, out_shape: Any = None, **kwargs: Any) -> int:
    """Matmul FLOPs of scaled_dot_product_attention from shapes (..., T, E): Q @ K^T, then weights @ V."""
    batch = 1
    for size in query[:-2]:
        batch *= size
    queries, keys, width, value_width = query[-2], key[-2], query[-1], value[-1]
    return 2 * batch * queries * keys * width + 2 * batch * queries * keys * value_width


def count_flops(fn: Any) -> int:
    """Matmul FLOPs of one call of fn: linear layers and attention, counted by torch.utils.flop_counter.

    On the CPU, scaled_dot_product_attention decomposes into
    aten._scaled_dot_product_flash_attention_for_cpu, which torch 2.13's counter has
    no formula for, so one is added here. Elementwise work (layer norm, GELU,
    softmax) is not counted.
    """
    from torch.utils.flop_counter import FlopCounterMode

    attention = torch.ops.aten._scaled_dot_product_flash_attention_for_cpu
    counter = FlopCounterMode(display=False, custom_mapping={attention: _attention_flops})
    with counter:
        fn()
    return int(counter.get_total_flops())


def profile_operators(fn: Any, rows: int) -> list[dict[str, Any]]:
    """Top `rows` torch operators by self CPU time during one call of fn, with their share of all operator time."""
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU]) as prof:
        fn()
    events = prof.key_averages()
    total = sum(event.self_cpu_time_total for event in events)
    top = sorted(events, key=lambda event: event.self_cpu_time_total, reverse=True)[:rows]
    return [
        {
            "name": event.key,
            "calls": event.count,
            "self_ms": event.self_cpu_time_total / 1000,
            "share": event.self_cpu_time_total / total,
        }
        for event in top
    ]


def parameter_count(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
