"""Training loops for the VAE and the transformer.

Both loops report through a progress callback and never print. A training
state file (model, AdamW moments and step, all in safetensors) is written at
each checkpoint so an interrupted run resumes where it stopped.
"""

from __future__ import annotations

import json
import logging
import math
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import torch
from PIL import Image

from .checkpoint import save_checkpoint
from .config import TransformerConfig, VAEConfig
from .data import to_model_range, to_pil
from .errors import CheckpointError, ConfigError
from .files import write_atomic
from .sampling import SamplingSettings, sample_image_tokens
from .tokenizer import CaptionTokenizer, train_tokenizer, words
from .transformer import DalleTransformer
from .vae import DiscreteVAE, tau_at

logger = logging.getLogger(__name__)


@dataclass
class TrainProgress:
    step: int
    total: int
    loss: float
    metrics: dict[str, float] = field(default_factory=dict)


ProgressFn = Callable[[TrainProgress], None]

AMP_MODES = ("none", "bf16", "auto")


def native_bf16(device: torch.device) -> bool:
    """Return whether bfloat16 matmuls and convolutions run natively on `device`.

    Without native support a CPU emulates them: on an AVX2-only CPU, training steps
    under bfloat16 autocast ran 19 to 40 times slower than in float32 (weights/README.md).
    """
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    if device.type == "cpu":
        # NOTE: torch has no public probe for this, so this calls the private oneDNN one, which torch's
        # own tests use to decide whether to test bfloat16. It returned False on an AVX2-only AMD EPYC,
        # and True on a CPU with avx512_bf16.
        probe = getattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", None)
        return bool(probe()) if probe is not None else False
    return False


def resolve_amp(amp: str, device: torch.device) -> str:
    """Turn "auto" into "bf16" or "none" for `device`, and warn when bf16 will be emulated."""
    if amp == "none":
        return amp

    native = native_bf16(device)
    if amp == "auto" and native:
        logger.info("--amp auto picked bfloat16 autocast, which runs natively on %s", device)
        return "bf16"
    if amp == "auto":
        logger.info("--amp auto picked float32, because bfloat16 is not native on %s", device)
        return "none"
    if not native:
        logger.warning(
            "bfloat16 has no native support on %s, so --amp bf16 runs many times slower than float32; "
            "use --amp none or --amp auto",
            device,
        )
    return amp


@dataclass
class TrainSettings:
    steps: int = 20_000
    batch_size: int = 64
    lr: float = 3e-4
    weight_decay: float = 0.01
    warmup_steps: int = 500
    checkpoint_every: int = 1000
    seed: int = 0
    device: str = "cpu"
    # "bf16" runs forward passes under bfloat16 autocast, "none" keeps float32, and "auto"
    # picks bf16 only where the device runs it natively (see resolve_amp).
    amp: str = "none"

    def validate(self) -> None:
        for name in ("steps", "batch_size", "checkpoint_every"):
            if getattr(self, name) < 1:
                raise ConfigError(f"invalid {name}={getattr(self, name)}: must be >= 1")
        if not self.lr > 0:
            raise ConfigError(f"invalid lr={self.lr}: must be > 0, for example 3e-4")
        if self.warmup_steps < 0:
            raise ConfigError(f"invalid warmup_steps={self.warmup_steps}: must be >= 0")
        if self.amp not in AMP_MODES:
            raise ConfigError(
                f"invalid amp={self.amp!r}: must be none, bf16 or auto; use auto to get bf16 where it runs natively"
            )

    def autocast(self) -> torch.autocast:
        device_type = torch.device(self.device).type
        return torch.autocast(device_type, dtype=torch.bfloat16, enabled=self.amp == "bf16")


def learning_rate(settings: TrainSettings, step: int) -> float:
    """Linear warm-up, then cosine decay to a tenth of the peak."""
    if step < settings.warmup_steps:
        return settings.lr * (step + 1) / settings.warmup_steps
    progress = (step - settings.warmup_steps) / max(1, settings.steps - settings.warmup_steps)
    return settings.lr * (0.1 + 0.45 * (1 + math.cos(math.pi * min(1.0, progress))))


def state_path(out: Path) -> Path:
    return out.with_name(out.stem + ".state.safetensors")


def save_state(
    path: Path,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    step: int,
    kind: str,
    base: str = "",
    base_name: str = "",
    total: int = 0,
    shape: str = "",
) -> None:
    """Save what resuming needs: model tensors, optimizer moments and the step, as safetensors.

    `kind` names the command that trains ("vae", "transformer", "decoder") and `base`
    fingerprints any frozen model the training builds on (`base_name` is its path, for
    messages), so load_state can reject a state file that belongs to another run.
    `total` is the number of steps the run was started for, which sets its learning-rate
    schedule. `shape` describes the trained model's architecture where a flag chose it.
    """
    from safetensors.torch import save_file

    tensors = {f"model.{k}": v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    opt_state = optimizer.state_dict()
    for index, state in opt_state["state"].items():
        for key, value in state.items():
            if torch.is_tensor(value):
                tensors[f"optim.{index}.{key}"] = value.detach().cpu().reshape(value.shape).contiguous()
    metadata = {"step": str(step), "param_groups": json.dumps(opt_state["param_groups"]), "kind": kind}
    metadata |= {"base": base, "base_name": base_name, "total_steps": str(total), "shape": shape}
    write_atomic(path, lambda tmp: save_file(tensors, str(tmp), metadata=metadata))


def load_state(
    path: Path,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    kind: str,
    base: str = "",
    total: int = 0,
    shape: str = "",
) -> int:
    """Restore a training state saved by save_state; return the step to continue from.

    A `total` other than the saved run's is allowed, to extend or shorten a run, with a
    warning: the learning-rate schedule follows the total, so it jumps at the resumed step.
    """
    from safetensors import safe_open

    with safe_open(str(path), framework="pt", device="cpu") as handle:
        metadata = handle.metadata()
        tensors = {key: handle.get_tensor(key) for key in handle.keys()}  # noqa: SIM118

    # State files written before `kind` was recorded have none, and are checked by tensor names only.
    written_by = metadata.get("kind", kind)
    start_over = "pick another --out, or delete the state file to start over"
    if written_by != kind:
        raise CheckpointError(
            f"cannot resume: {path} is the training state of `dalle train {written_by}`, "
            f"not `dalle train {kind}`; {start_over}"
        )
    # State files written before `shape` was recorded have none. The tensor check below still catches a misfit.
    if metadata.get("shape", shape) != shape:
        raise CheckpointError(
            f"cannot resume: {path} was saved while training a decoder of {metadata['shape']}, and this run "
            f"requests {shape}; pass the same --new-decoder and --new-decoder-res-blocks, or {start_over}"
        )
    if metadata.get("base", "") != base:
        earlier = metadata.get("base_name") or "another model"
        raise CheckpointError(
            f"cannot resume: {path} was saved while training on --model {earlier}, which differs from this one; "
            f"pass that --model, or {start_over}"
        )
    try:
        model.load_state_dict({k[6:]: v for k, v in tensors.items() if k.startswith("model.")}, strict=True)
    except RuntimeError as exc:
        raise CheckpointError(
            f"cannot resume: the tensors in {path} do not fit this model ({str(exc).splitlines()[0]}); {start_over}"
        ) from exc

    state: dict[int, dict[str, torch.Tensor]] = {}
    for key, value in tensors.items():
        if key.startswith("optim."):
            _, index, name = key.split(".", 2)
            state.setdefault(int(index), {})[name] = value
    optimizer.load_state_dict({"state": state, "param_groups": json.loads(metadata["param_groups"])})
    step = int(metadata["step"])
    planned = int(metadata.get("total_steps", "0"))  # 0: written before totals were recorded
    if total and step >= total:
        logger.info(
            "%s is at step %d, which reaches --steps %d, so there is nothing to train; raise --steps", path, step, total
        )
    elif planned and total and planned != total:
        logger.warning(
            "resuming at step %d a run started for --steps %d, now %d: the learning-rate schedule changes "
            "from here on; pass --steps %d to keep it",
            step,
            planned,
            total,
            planned,
        )
    return step


def make_grid(images: list[Image.Image], columns: int) -> Image.Image:
    """Paste equally sized images into one contact sheet, row by row."""
    width, height = images[0].size
    rows = math.ceil(len(images) / columns)
    grid = Image.new("RGB", (columns * width, rows * height), (255, 255, 255))
    for i, image in enumerate(images):
        grid.paste(image, ((i % columns) * width, (i // columns) * height))
    return grid


def save_grid(images: list[Image.Image], path: Path, columns: int) -> None:
    """Write a contact sheet of `images` as PNG, atomically."""
    grid = make_grid(images, columns)
    write_atomic(path, lambda tmp: grid.save(tmp, format="PNG"))


def train_vae(
    images: torch.Tensor,
    config: VAEConfig,
    settings: TrainSettings,
    out: Path,
    resume: bool = False,
    progress: ProgressFn | None = None,
) -> DiscreteVAE:
    """Train a discrete VAE on uint8 images (N, 3, H, W) and save it to `out`.

    Every checkpoint also writes `<out stem>-samples/step-N.png`: originals on
    the top row, reconstructions below.
    """
    settings.validate()
    if images.shape[-1] != config.image_size:
        raise ConfigError(f"images are {images.shape[-1]} px but image_size={config.image_size}; reload them")
    torch.manual_seed(settings.seed)
    device = torch.device(settings.device)
    settings = replace(settings, amp=resolve_amp(settings.amp, device))
    # Channels-last convolutions ran 1.2x faster than the default layout on a 2-core CPU (oneDNN).
    vae = DiscreteVAE(config).to(device, memory_format=torch.channels_last)
    optimizer = torch.optim.AdamW(vae.parameters(), lr=settings.lr, weight_decay=0.0)
    start = 0
    if resume and state_path(out).exists():
        start = load_state(state_path(out), vae, optimizer, kind="vae", total=settings.steps)
        logger.info("resuming VAE training from step %d", start)
    generator = torch.Generator().manual_seed(settings.seed)
    preview = to_model_range(images[:8]).to(device)
    started = time.monotonic()

    vae.train()
    for step in range(start, settings.steps):
        # Draw the batch for this step from a seed that depends on the step, so resuming repeats it.
        generator.manual_seed(settings.seed * 1_000_003 + step)
        batch = to_model_range(images[torch.randint(0, images.shape[0], (settings.batch_size,), generator=generator)])
        batch = batch.to(device).contiguous(memory_format=torch.channels_last)
        for group in optimizer.param_groups:
            group["lr"] = learning_rate(settings, step)
        with settings.autocast():
            output = vae(batch, tau=tau_at(config, step, settings.steps))
        optimizer.zero_grad(set_to_none=True)
        output.loss.backward()
        optimizer.step()

        done = step + 1
        if progress is not None:
            metrics = {"mse": output.recon_loss.item(), "perplexity": output.perplexity.item()}
            progress(TrainProgress(done, settings.steps, output.loss.item(), metrics))
        if done % settings.checkpoint_every == 0 or done == settings.steps:
            vae.eval()
            with torch.no_grad():
                reconstruction = vae.decode(vae.encode(preview))
            vae.train()
            samples = out.with_name(out.stem + "-samples")
            samples.mkdir(parents=True, exist_ok=True)
            save_grid(to_pil(torch.cat([preview, reconstruction])), samples / f"step-{done:06d}.png", columns=8)
            facts = {"kind": "vae", "steps": done, "batch_size": settings.batch_size, "images": int(images.shape[0])}
            facts["train_seconds"] = round(time.monotonic() - started, 1)
            facts["amp"] = settings.amp
            save_checkpoint(out, vae.eval(), training=facts)
            vae.train()
            save_state(state_path(out), vae, optimizer, done, kind="vae", total=settings.steps)
    vae.eval()
    return vae


def build_tokenizer(captions: list[list[str]], text_len: int, vocab_size: int) -> CaptionTokenizer:
    flat = [c for alternatives in captions for c in alternatives]
    vocabulary = sorted({w for caption in flat for w in words(caption)})
    return CaptionTokenizer(train_tokenizer(flat, vocab_size), text_len, vocabulary)


def encode_captions(tokenizer: CaptionTokenizer, captions: list[list[str]]) -> list[list[list[int]]]:
    """Token ids for every caption alternative; training captions that overflow are truncated once, with a count."""
    quiet = logging.getLogger("dalle.model.tokenizer")
    previous = quiet.level
    quiet.setLevel(logging.ERROR)  # one summary line below instead of a warning per caption
    try:
        encoded = [[tokenizer.encode(c) for c in alternatives] for alternatives in captions]
    finally:
        quiet.setLevel(previous)
    truncated = sum(e.truncated for alternatives in encoded for e in alternatives)
    if truncated:
        logger.warning(
            "%d training captions were longer than text_len=%d and were truncated", truncated, tokenizer.text_len
        )
    return [[e.ids for e in alternatives] for alternatives in encoded]


def train_transformer(
    codes: torch.Tensor,
    captions: list[list[str]],
    vae: DiscreteVAE,
    config: TransformerConfig,
    settings: TrainSettings,
    out: Path,
    tokenizer: CaptionTokenizer,
    resume: bool = False,
    sample_prompts: list[str] | None = None,
    dtype: str = "float32",
    progress: ProgressFn | None = None,
) -> DalleTransformer:
    """Train the transformer on token grids `codes` (N, h, w) and save VAE + transformer + tokenizer to `out`.

    Every checkpoint writes `<out stem>-samples/step-N.png`, one row of four
    samples for each of up to four prompts.
    """
    settings.validate()
    torch.manual_seed(settings.seed)
    device = torch.device(settings.device)
    settings = replace(settings, amp=resolve_amp(settings.amp, device))
    model = DalleTransformer(config).to(device)
    decay = [p for n, p in model.named_parameters() if p.dim() >= 2 and "emb" not in n]
    no_decay = [p for n, p in model.named_parameters() if not (p.dim() >= 2 and "emb" not in n)]
    optimizer = torch.optim.AdamW(
        [{"params": decay, "weight_decay": settings.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
        lr=settings.lr,
        betas=(0.9, 0.95),
    )
    start = 0
    if resume and state_path(out).exists():
        start = load_state(state_path(out), model, optimizer, kind="transformer", total=settings.steps)
        logger.info("resuming transformer training from step %d", start)

    caption_ids = encode_captions(tokenizer, captions)
    empty = torch.tensor(tokenizer.empty(), device=device)
    flat_codes = codes.reshape(codes.shape[0], -1).to(device)  # (N, h*w)
    prompts = (sample_prompts or [captions[i][0] for i in range(min(4, len(captions)))])[:4]
    started = time.monotonic()

    model.train()
    for step in range(start, settings.steps):
        rng = random.Random(settings.seed * 1_000_003 + step)
        indices = [rng.randrange(codes.shape[0]) for _ in range(settings.batch_size)]
        text = torch.tensor([rng.choice(caption_ids[i]) for i in indices], device=device)  # (B, L)
        dropped = torch.tensor([rng.random() < config.caption_dropout for _ in indices], device=device)
        text = torch.where(dropped[:, None], empty[None, :], text)
        for group in optimizer.param_groups:
            group["lr"] = learning_rate(settings, step)
        with settings.autocast():
            losses = model.loss(text, flat_codes[indices])
        optimizer.zero_grad(set_to_none=True)
        losses.loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()

        done = step + 1
        if progress is not None:
            metrics = {"text": losses.text_loss.item(), "image": losses.image_loss.item()}
            progress(TrainProgress(done, settings.steps, losses.loss.item(), metrics))
        if done % settings.checkpoint_every == 0 or done == settings.steps:
            model.eval()
            _write_samples(
                model, vae, tokenizer, prompts, out.with_name(out.stem + "-samples") / f"step-{done:06d}.png"
            )
            facts: dict[str, Any] = {
                "kind": "transformer",
                "steps": done,
                "batch_size": settings.batch_size,
                "examples": int(codes.shape[0]),
                "train_seconds": round(time.monotonic() - started, 1),
                "parameters": model.num_parameters(),
                "amp": settings.amp,
            }
            save_checkpoint(out, vae, model, tokenizer, training=facts, dtype=dtype)
            save_state(state_path(out), model, optimizer, done, kind="transformer", total=settings.steps)
            model.train()
    model.eval()
    return model


def _write_samples(
    model: DalleTransformer, vae: DiscreteVAE, tokenizer: CaptionTokenizer, prompts: list[str], path: Path
) -> None:
    encoded = {p: tokenizer.encode(p).ids for p in prompts}  # one warning per prompt, not per sample
    ids = [encoded[p] for p in prompts for _ in range(4)]
    device = next(model.parameters()).device
    text = torch.tensor(ids, device=device)
    tokens = sample_image_tokens(
        model, text, torch.tensor(tokenizer.empty()), list(range(len(ids))), SamplingSettings()
    )
    grid = vae.config.grid_size
    images = vae.to(device).decode(tokens.view(-1, grid, grid))
    path.parent.mkdir(parents=True, exist_ok=True)
    save_grid(to_pil(images), path, columns=4)
