"""Shared fixtures: tiny random-weight models, saved as real checkpoint files."""

from __future__ import annotations

import logging
import random
from pathlib import Path

import pytest
import torch
from dalle.model.captions import caption
from dalle.model.checkpoint import save_checkpoint
from dalle.model.config import TransformerConfig, VAEConfig
from dalle.model.toyworld import random_scene
from dalle.model.train import build_tokenizer
from dalle.model.transformer import DalleTransformer
from dalle.model.vae import DiscreteVAE


@pytest.fixture(autouse=True)
def _restore_dalle_logger():
    """Undo the handler, level and propagation that an in-process CLI run gives the "dalle" logger.

    Its handler writes to the stderr of that run, which is closed afterwards, and
    its level and propagation would change what later tests capture.
    """
    logger = logging.getLogger("dalle")
    saved = (logger.handlers[:], logger.level, logger.propagate)
    yield
    logger.handlers[:], level, logger.propagate = saved
    logger.setLevel(level)


TINY_VAE = VAEConfig(image_size=16, hidden_dims=(8, 16), codebook_size=32, codebook_dim=8)


def tiny_captions(count: int = 200, seed: int = 0) -> list[list[str]]:
    rng = random.Random(seed)
    return [[caption(random_scene(rng), rng)] for _ in range(count)]


def tiny_parts(seed: int = 0, quantizer: str = "vq_ema"):
    """A random VAE, a tokenizer trained on toy captions, and a random transformer over them."""
    torch.manual_seed(seed)
    vae = DiscreteVAE(VAEConfig(**{**TINY_VAE.__dict__, "quantizer": quantizer})).eval()
    tokenizer = build_tokenizer(tiny_captions(), text_len=16, vocab_size=400)
    config = TransformerConfig(
        text_vocab_size=tokenizer.vocab_size,
        text_len=16,
        image_vocab_size=vae.config.codebook_size,
        grid_size=vae.config.grid_size,
        n_layer=2,
        n_head=2,
        n_embd=32,
    )
    transformer = DalleTransformer(config).eval()
    return vae, transformer, tokenizer


@pytest.fixture(scope="session")
def tiny_model_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    vae, transformer, tokenizer = tiny_parts()
    path = tmp_path_factory.mktemp("models") / "tiny.safetensors"
    save_checkpoint(path, vae, transformer, tokenizer, training={"kind": "test"})
    return path
