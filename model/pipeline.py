"""Text-to-image entry point for scripts and notebooks; the CLI uses it too.

from dalle.model import TextToImage
pipe = TextToImage.from_pretrained()          # the shipped default model
images = pipe.generate(["orange dinosaur in a suit"] * 4, seed=0)
images[0].save("dino.png")
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Sequence
from pathlib import Path

import torch
from PIL import Image

from .checkpoint import Checkpoint, load_checkpoint
from .data import to_pil
from .errors import ConfigError
from .rerank import candidate_seeds, pmi_scores
from .sampling import SamplingSettings, sample_image_tokens
from .tokenizer import CaptionTokenizer
from .transformer import DalleTransformer

logger = logging.getLogger(__name__)

DEFAULT_MODEL_NAME = "dalle-toy.safetensors"


# Grids per VAE decode call; fixed so that pixels do not depend on the batch (see decode).
# Eight grids in one call also decode several times faster per image than one at a time.
DECODE_BATCH = 8


def default_model_path() -> Path:
    """Path of the checkpoint shipped in the dalle.weights package."""
    from importlib.resources import files

    return Path(str(files("dalle.weights").joinpath(DEFAULT_MODEL_NAME)))


def resolve_device(device: str) -> torch.device:
    """Turn "auto", "cpu", "cuda" or "cuda:N" into a device, with a clear error when it is missing."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        resolved = torch.device(device)
    except RuntimeError as exc:
        # torch's own message lists every device type it supports, and dalle can use only cpu and cuda.
        raise ConfigError(f"invalid device {device!r}: use cpu, cuda, cuda:N or auto") from exc
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"device {device!r} requested but CUDA is not available; use --device cpu")
    if resolved.type not in ("cpu", "cuda"):
        raise ConfigError(f"device {device!r} is not supported; use cpu, cuda, cuda:N or auto")
    return resolved


class TextToImage:
    """A loaded model that turns prompts into PIL images."""

    def __init__(self, checkpoint: Checkpoint, device: str = "cpu") -> None:
        if checkpoint.transformer is None or checkpoint.tokenizer is None:
            raise ConfigError(
                f"{checkpoint.path} contains no transformer; pass a checkpoint from `dalle train transformer`"
            )
        self.checkpoint = checkpoint
        self.device = resolve_device(device)
        self.transformer: DalleTransformer = checkpoint.transformer.to(self.device)
        self.tokenizer: CaptionTokenizer = checkpoint.tokenizer
        self.vae = checkpoint.vae.to(self.device)

    @classmethod
    def from_pretrained(cls, path: str | os.PathLike[str] | None = None, device: str = "cpu") -> TextToImage:
        """Load a checkpoint file, or the shipped default model when `path` is None."""
        path = default_model_path() if path is None else Path(path)
        return cls(load_checkpoint(path, require_transformer=True), device=device)

    @property
    def image_size(self) -> int:
        return self.vae.config.image_size

    def generate(
        self,
        prompts: Sequence[str],
        seed: int = 0,
        settings: SamplingSettings | None = None,
        batch_size: int = 8,
        progress: Callable[[int, int], None] | None = None,
        candidates: int = 1,
    ) -> list[Image.Image]:
        """Draw one image per entry of `prompts`; entry i uses seed `seed + i`.

        Repeat a prompt to get several images of it. `progress(done, total)`
        counts sampled image tokens over the whole request. `candidates` > 1
        keeps the best of that many samples per image (see generate_with_seeds).
        """
        settings = settings or SamplingSettings()
        settings.validate(self.transformer.config.image_vocab_size)
        if batch_size < 1:
            raise ConfigError(f"invalid batch_size={batch_size}: must be >= 1")
        seeds = [seed + i for i in range(len(prompts))]
        return self.generate_with_seeds(prompts, seeds, settings, batch_size, progress, candidates)

    def generate_with_seeds(
        self,
        prompts: Sequence[str],
        seeds: Sequence[int],
        settings: SamplingSettings,
        batch_size: int = 8,
        progress: Callable[[int, int], None] | None = None,
        candidates: int = 1,
    ) -> list[Image.Image]:
        """Draw one image per (prompt, seed) pair; an image depends only on its own pair and the settings.

        With `candidates` M > 1, M token grids are sampled per image (seeds from
        rerank.candidate_seeds) and the one with the highest PMI score is kept.
        """
        if len(prompts) != len(seeds):
            raise ConfigError(f"got {len(prompts)} prompts and {len(seeds)} seeds; pass one seed per prompt")
        if candidates < 1:
            raise ConfigError(f"invalid candidates={candidates}: must be >= 1")
        if candidates > 1:
            text = self._encode(prompts).repeat_interleave(candidates, dim=0)  # (B * M, L)
            expanded_seeds = [c for s in seeds for c in candidate_seeds(s, candidates)]
            tokens = self.sample_tokens(text, expanded_seeds, settings, batch_size, progress)
            scores = torch.cat(
                [
                    pmi_scores(self.transformer, text[i : i + batch_size], self._empty(), tokens[i : i + batch_size])
                    for i in range(0, text.shape[0], batch_size)
                ]
            )
            best = scores.view(len(prompts), candidates).argmax(dim=1)  # (B,)
            rows = torch.arange(len(prompts), device=best.device) * candidates + best
            return self.decode(tokens[rows])
        return self.decode(self.sample_tokens(self._encode(prompts), seeds, settings, batch_size, progress))

    def _encode(self, prompts: Sequence[str]) -> torch.Tensor:
        """Tokenize prompts into text segments (B, L); each distinct prompt is encoded, and warned about, once."""
        ids = {p: self.tokenizer.encode(p).ids for p in dict.fromkeys(prompts)}
        return torch.tensor([ids[p] for p in prompts], device=self.device)

    def _empty(self) -> torch.Tensor:
        return torch.tensor(self.tokenizer.empty(), device=self.device)

    def decode(self, tokens: torch.Tensor) -> list[Image.Image]:
        """Decode token grids (B, N) into PIL images with the VAE."""
        grid = self.vae.config.grid_size
        images: list[Image.Image] = []
        with torch.inference_mode():
            # The CPU convolutions round differently for different batch sizes, so a grid decoded
            # with 3 others could differ by one level from the same grid decoded alone. Every call
            # therefore decodes exactly DECODE_BATCH grids, and copies pad the last chunk.
            for start in range(0, len(tokens), DECODE_BATCH):
                chunk = tokens[start : start + DECODE_BATCH].view(-1, grid, grid)
                real = len(chunk)
                if real < DECODE_BATCH:
                    chunk = torch.cat([chunk, chunk[-1:].expand(DECODE_BATCH - real, grid, grid)])
                images.extend(to_pil(self.vae.decode(chunk)[:real]))
        return images

    def sample_tokens(
        self,
        text: torch.Tensor,
        seeds: Sequence[int],
        settings: SamplingSettings,
        batch_size: int = 8,
        progress: Callable[[int, int], None] | None = None,
    ) -> torch.Tensor:
        """Sample image token grids (B, N) for text segments (B, L) and one seed per row, batch by batch."""
        empty = self._empty()
        image_len = self.transformer.config.image_len
        total = text.shape[0] * image_len
        batches: list[torch.Tensor] = []
        for start in range(0, text.shape[0], batch_size):
            end = min(start + batch_size, text.shape[0])

            def report(done: int, _total: int, offset: int = start, rows: int = end - start) -> None:
                if progress is not None:
                    progress(offset * image_len + done * rows, total)

            batches.append(
                sample_image_tokens(
                    self.transformer, text[start:end], empty, list(seeds[start:end]), settings, progress=report
                )
            )
        return torch.cat(batches)
