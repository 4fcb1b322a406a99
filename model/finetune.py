"""Decoder training on frozen tokens: sharper reconstructions without changing any image token.

The encoder and codebook stay frozen, so every image maps to the same codes as
before and a transformer trained on those codes stays valid. Only the decoder
learns, with a mean squared error loss, because PSNR is a function of the mean
squared error. During VAE training the decoder trains with L1 on codes that keep
moving; here it fits the final codes, which stay fixed. The decoder is either the
old one, fine-tuned, or a new one of other widths trained from random weights.
"""

from __future__ import annotations

import hashlib
import logging
import time
from dataclasses import dataclass, replace
from pathlib import Path

import torch
import torch.nn.functional as F

from .checkpoint import Checkpoint, save_checkpoint
from .data import to_model_range, to_pil
from .encoding import encode_images, hash_tensors
from .errors import ConfigError
from .train import (
    ProgressFn,
    TrainProgress,
    TrainSettings,
    learning_rate,
    load_state,
    resolve_amp,
    save_grid,
    save_state,
    state_path,
)
from .vae import Decoder, DiscreteVAE

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class NewDecoder:
    """Shape of a decoder trained from random weights: channels per level (coarsest first), blocks per level."""

    dims: tuple[int, ...]
    res_blocks: int


def finetune_decoder(
    images: torch.Tensor,
    checkpoint: Checkpoint,
    settings: TrainSettings,
    out: Path,
    dtype: str = "float32",
    resume: bool = False,
    progress: ProgressFn | None = None,
    new_decoder: NewDecoder | None = None,
) -> DiscreteVAE:
    """Train the decoder of `checkpoint` on uint8 images (N, 3, H, W) and save the checkpoint to `out`.

    With `new_decoder`, a decoder of that shape starts from random weights in
    place of the old one; otherwise the old decoder is fine-tuned. The
    transformer and tokenizer, when present, are saved unchanged beside the
    decoder. Every checkpoint also writes `<out stem>-samples/step-N.png`:
    originals on the top row, reconstructions below.
    """
    settings.validate()
    vae = checkpoint.vae
    if images.shape[-1] != vae.config.image_size:
        raise ConfigError(
            f"images are {images.shape[-1]} px but the VAE takes image_size={vae.config.image_size}; reload them"
        )
    torch.manual_seed(settings.seed)
    device = torch.device(settings.device)
    settings = replace(settings, amp=resolve_amp(settings.amp, device))

    # 1. Swap in a new decoder if requested. The state file records its shape, so resuming checks it.
    fresh = new_decoder is not None
    if new_decoder is not None:
        vae.config = replace(vae.config, decoder_dims=new_decoder.dims, decoder_res_blocks=new_decoder.res_blocks)
        vae.decoder = Decoder(vae.config).to(next(vae.parameters()).dtype)
        shape = decoder_shape(vae)
        count = sum(p.numel() for p in vae.decoder.parameters())
        logger.info("new decoder: %s, %.2f M parameters", shape, count / 1e6)
    else:
        shape = f"{decoder_shape(vae)} (the decoder of --model)"

    # 2. Freeze everything but the decoder. encode() never updates the EMA codebook, only forward() does.
    vae = vae.to(device, memory_format=torch.channels_last).eval()
    vae.requires_grad_(False)
    vae.decoder.requires_grad_(True)
    optimizer = torch.optim.AdamW(vae.decoder.parameters(), lr=settings.lr, weight_decay=0.0)
    start = 0
    base = frozen_fingerprint(checkpoint)
    if resume and state_path(out).exists():
        start = load_state(
            state_path(out), vae.decoder, optimizer, kind="decoder", base=base, total=settings.steps, shape=shape
        )
        if start >= settings.steps:
            return vae
        logger.info("resuming decoder training from step %d", start)
    elif resume:
        logger.info("no training state at %s, so decoder training starts at step 0", state_path(out))
    preview = to_model_range(images[:8]).to(device)
    generator = torch.Generator().manual_seed(settings.seed)
    started = time.monotonic()

    # 3. Encode every image once: the frozen encoder gives an image the same codes at every step.
    logger.info("encoding %d images with the frozen encoder", images.shape[0])
    codes = encode_images(vae, images)  # (N, h, w)

    for step in range(start, settings.steps):
        # 4. Pick a batch. It depends only on the step, so resuming repeats it.
        generator.manual_seed(settings.seed * 1_000_003 + step)
        picks = torch.randint(0, images.shape[0], (settings.batch_size,), generator=generator)
        batch = to_model_range(images[picks]).to(device).contiguous(memory_format=torch.channels_last)
        with torch.no_grad():
            quantized = vae.embed(codes[picks].to(device))  # (B, D, h, w)

        # 5. Decode and step on the mean squared error.
        for group in optimizer.param_groups:
            group["lr"] = learning_rate(settings, step)
        with settings.autocast():
            reconstruction = vae.decoder(quantized).float()
        loss = F.mse_loss(reconstruction, batch)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

        done = step + 1
        if progress is not None:
            progress(TrainProgress(done, settings.steps, loss.item()))
        if done % settings.checkpoint_every == 0 or done == settings.steps:
            _save(vae, checkpoint, settings, out, preview, done, int(images.shape[0]), started, dtype, fresh)
            save_state(
                state_path(out),
                vae.decoder,
                optimizer,
                done,
                kind="decoder",
                base=base,
                base_name=str(checkpoint.path),
                total=settings.steps,
                shape=shape,
            )
    return vae


def decoder_shape(vae: DiscreteVAE) -> str:
    """Describe the decoder's architecture in words, e.g. "widths 384,192,64 with 3 residual blocks per level"."""
    widths = ",".join(str(width) for width in vae.config.decoder_widths)
    blocks = vae.config.decoder_blocks
    return f"widths {widths} with {blocks} residual block{'' if blocks == 1 else 's'} per level"


def frozen_fingerprint(checkpoint: Checkpoint) -> str:
    """SHA-256 over every part that decoder training leaves alone: encoder, codebook, transformer.

    The decoder's shape is left out, as its own check gives a clearer message.
    """
    config = replace(checkpoint.vae.config, decoder_dims=None, decoder_res_blocks=None)
    digest = hashlib.sha256(config.to_json().encode())
    tensors = [(f"vae.{k}", v) for k, v in checkpoint.vae.state_dict().items() if not k.startswith("decoder.")]
    if checkpoint.transformer is not None:
        tensors += [(f"transformer.{k}", v) for k, v in checkpoint.transformer.state_dict().items()]
    hash_tensors(digest, tensors)
    return digest.hexdigest()


def _save(
    vae: DiscreteVAE,
    checkpoint: Checkpoint,
    settings: TrainSettings,
    out: Path,
    preview: torch.Tensor,
    step: int,
    image_count: int,
    started: float,
    dtype: str,
    fresh: bool,
) -> None:
    with torch.no_grad():
        reconstruction = vae.decode(vae.encode(preview))
    samples = out.with_name(out.stem + "-samples")
    samples.mkdir(parents=True, exist_ok=True)
    save_grid(to_pil(torch.cat([preview, reconstruction])), samples / f"step-{step:06d}.png", columns=8)

    facts = {
        "steps": step,
        "batch_size": settings.batch_size,
        "lr": settings.lr,
        "images": image_count,
        "train_seconds": round(time.monotonic() - started, 1),
        "amp": settings.amp,
        "new_decoder": fresh,  # True: trained from random weights, shape in vae_config
    }
    # The facts of earlier runs stay: they describe the encoder, codebook and transformer, which did not change.
    # So does the record of an earlier decoder run that this one fine-tuned further; a new decoder replaces it.
    earlier = checkpoint.training.get("decoder_finetune")
    if not fresh and earlier is not None:
        facts["earlier"] = earlier
    training = {**checkpoint.training, "decoder_finetune": facts}
    save_checkpoint(out, vae, checkpoint.transformer, checkpoint.tokenizer, training=training, dtype=dtype)
