"""Batch encoding of image tensors with a VAE, and reconstruction checks."""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import torch

from .data import to_model_range, to_pil
from .files import write_atomic
from .vae import DiscreteVAE


def hash_tensors(digest: Any, tensors: Iterable[tuple[str, torch.Tensor]]) -> None:
    """Feed named tensors into a hashlib digest, in name order.

    Tensors are hashed as float16 bytes, so a checkpoint saved in float16 keeps
    the fingerprint it had in float32.
    """
    for name, tensor in sorted(tensors, key=lambda item: item[0]):
        digest.update(name.encode())
        digest.update(tensor.detach().to("cpu", torch.float16).contiguous().numpy().tobytes())


def vae_fingerprint(vae: DiscreteVAE) -> str:
    """SHA-256 over the VAE config and tensors, so a codes file can name the VAE that made it."""
    digest = hashlib.sha256(vae.config.to_json().encode())
    hash_tensors(digest, vae.state_dict().items())
    return digest.hexdigest()


@torch.inference_mode()
def encode_images(
    vae: DiscreteVAE, images: torch.Tensor, batch_size: int = 256, progress: Callable[[int, int], None] | None = None
) -> torch.Tensor:
    """Encode uint8 images (N, 3, H, W) into codes (N, h, w) on the VAE's device; returns CPU codes."""
    device = next(vae.parameters(), torch.empty(0)).device
    out = []
    for start in range(0, images.shape[0], batch_size):
        batch = to_model_range(images[start : start + batch_size]).to(device)
        out.append(vae.encode(batch).cpu())
        if progress is not None:
            progress(min(start + batch_size, images.shape[0]), images.shape[0])
    return torch.cat(out)


def psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    """Peak signal-to-noise ratio in dB between two image batches in [-1, 1]."""
    mse = ((a - b) / 2).pow(2).mean().item()
    return float("inf") if mse == 0 else 10 * math.log10(1.0 / mse)


@torch.inference_mode()
def write_reconstructions(
    vae: DiscreteVAE, images: torch.Tensor, codes: torch.Tensor, names: list[Path], root: Path, out: Path
) -> float:
    """Decode `codes` and write each reconstruction under `out`, mirroring the paths under `root`.

    Returns the mean PSNR of the reconstructions against `images`.
    """
    device = next(vae.parameters(), torch.empty(0)).device
    total = 0.0
    for start in range(0, codes.shape[0], 256):
        original = to_model_range(images[start : start + 256]).to(device)
        decoded = vae.decode(codes[start : start + 256].to(device))
        total += psnr(decoded, original) * original.shape[0]
        for image, name in zip(to_pil(decoded), names[start : start + 256], strict=True):
            target = out / name.relative_to(root).with_suffix(".png")
            target.parent.mkdir(parents=True, exist_ok=True)
            write_atomic(target, lambda tmp, img=image: img.save(tmp, format="PNG"))
    return total / max(1, codes.shape[0])
