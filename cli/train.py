"""`dalle train`, `dalle encode` and `dalle data` commands."""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Annotated, Any

import typer

from .console import emit, progress_bar
from .finetune import EXAMPLES as DECODER_EXAMPLES
from .finetune import train_decoder
from .judge import EXAMPLES as JUDGE_EXAMPLES
from .judge import train_judge
from .options import AmpOption, DataArg, parse_widths

logger = logging.getLogger("dalle.cli")

train_app = typer.Typer(help="Train the VAE, then the transformer.", no_args_is_help=True)
data_app = typer.Typer(help="Make datasets.", no_args_is_help=True)


class _LogEvery:
    """Log a training line every `every` steps, and at the last one, for runs without a terminal.

    The time left is estimated from the pace since the first step this run made, so
    neither loading data nor the steps of a run that was resumed skew it.
    """

    def __init__(self, name: str, every: int) -> None:
        self.name = name
        self.every = every
        self.started = time.monotonic()
        self.first: tuple[int, float] | None = None  # (step, time) of the first step this run made

    def __call__(self, step: int, total: int, loss: float, metrics: dict[str, float]) -> None:
        now = time.monotonic()
        if self.first is None:
            self.first = (step, now)
        if step % self.every and step != total:
            return
        first_step, first_time = self.first
        eta = "unknown"
        if step > first_step:
            seconds_per_step = (now - first_time) / (step - first_step)
            eta = f"{seconds_per_step * (total - step):.0f}s"
        extra = "".join(f" {k} {v:.4f}" for k, v in metrics.items())
        logger.info(
            "%s step %d/%d loss %.4f%s elapsed %.0fs eta %s",
            self.name,
            step,
            total,
            loss,
            extra,
            now - self.started,
            eta,
        )


def prepare_out(out: Path) -> None:
    """Create the folder of checkpoint `out` before training, so a bad --out fails before the first step."""
    from dalle.model.errors import ConfigError

    if out.is_dir():
        raise ConfigError(f"--out {out} is a folder; pass a file path such as {out / 'model.safetensors'}")
    for parent in out.parents:
        if parent.exists() and not parent.is_dir():
            raise ConfigError(f"--out {out} lies under {parent}, which is a file; pass a path in a folder")
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(
            f"cannot create the folder of --out {out} ({exc.strerror}); pass a path in a writable folder"
        ) from exc


def _load_dataset(data: Path, image_size: int) -> tuple[Any, list[list[str]]]:
    from dalle.model.data import load_images, scan_folder

    examples = scan_folder(data)
    logger.info("loading %d images from %s", len(examples), data)
    with progress_bar("loading", len(examples)) as update:
        images = load_images(examples, image_size, progress=lambda done, _total: update(done))
    return images, [e.captions for e in examples]


@train_app.command("vae", epilog="Example:\n\n  dalle train vae data/toy --out vae.safetensors --steps 2000")
def train_vae(
    data: DataArg,
    out: Annotated[Path, typer.Option("--out", "-o", help="Checkpoint to write (.safetensors).")] = Path(
        "vae.safetensors"
    ),
    steps: Annotated[int, typer.Option(help="Optimizer steps.", min=1)] = 20_000,
    batch_size: Annotated[int, typer.Option(help="Images per step.", min=1)] = 64,
    lr: Annotated[float, typer.Option(help="Peak learning rate.")] = 1e-3,
    image_size: Annotated[int, typer.Option(help="Side of the square training images, in pixels.")] = 64,
    hidden_dims: Annotated[str, typer.Option(help="Comma-separated encoder widths; one level halves the size.")] = (
        "64,128,256"
    ),
    codebook_size: Annotated[int, typer.Option(help="Number of codebook entries (image vocabulary).")] = 1024,
    codebook_dim: Annotated[int, typer.Option(help="Width of a codebook entry.")] = 64,
    quantizer: Annotated[str, typer.Option(help="vq_ema (EMA codebook) or gumbel (DALL-E relaxation).")] = "vq_ema",
    recon_loss: Annotated[str, typer.Option(help="Reconstruction loss: l1 (sharper) or mse.")] = "l1",
    num_res_blocks: Annotated[int, typer.Option(help="Residual blocks per encoder and decoder level.")] = 1,
    checkpoint_every: Annotated[int, typer.Option(help="Steps between checkpoints and sample grids.", min=1)] = 1000,
    seed: Annotated[int, typer.Option(help="Seed for initialisation and batch order.")] = 0,
    device: Annotated[str, typer.Option(help="cpu, cuda, cuda:N or auto.")] = "auto",
    amp: AmpOption = "none",
    resume: Annotated[bool, typer.Option(help="Continue from the training state saved beside --out.")] = False,
) -> None:
    """Train the discrete VAE that turns images into codebook tokens."""
    from dalle.model.config import VAEConfig
    from dalle.model.pipeline import resolve_device
    from dalle.model.train import TrainSettings
    from dalle.model.train import train_vae as run

    config = VAEConfig(
        image_size=image_size,
        hidden_dims=parse_widths("--hidden-dims", hidden_dims, "64,128,256"),
        codebook_size=codebook_size,
        codebook_dim=codebook_dim,
        quantizer=quantizer,
        recon_loss=recon_loss,
        num_res_blocks=num_res_blocks,
    )
    settings = TrainSettings(
        steps=steps,
        batch_size=batch_size,
        lr=lr,
        warmup_steps=min(200, steps // 10),
        checkpoint_every=checkpoint_every,
        seed=seed,
        device=str(resolve_device(device)),
        amp=amp,
    )
    settings.validate()
    prepare_out(out)
    images, _ = _load_dataset(data, image_size)
    log = _LogEvery("vae", max(1, steps // 20))
    with progress_bar("train vae", steps) as update:

        def report(p: Any) -> None:
            update(p.step, loss=p.loss, **p.metrics)
            log(p.step, p.total, p.loss, p.metrics)

        run(images, config, settings, out, resume=resume, progress=report)
    emit(str(out))


@train_app.command(
    "transformer",
    epilog=(
        "Examples:\n\n"
        "  dalle train transformer data/toy --vae vae.safetensors --out dalle.safetensors\n\n"
        "  dalle encode data/toy --model vae.safetensors -o codes.safetensors\n\n"
        "  dalle train transformer codes.safetensors --vae vae.safetensors"
    ),
)
def train_transformer(
    data: Annotated[
        Path,
        typer.Argument(help="Image folder, or a codes file from `dalle encode`.", show_default=False, metavar="DATA"),
    ],
    vae: Annotated[Path, typer.Option(help="VAE checkpoint from `dalle train vae`.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Checkpoint to write (.safetensors).")] = Path(
        "dalle.safetensors"
    ),
    steps: Annotated[int, typer.Option(help="Optimizer steps.", min=1)] = 50_000,
    batch_size: Annotated[int, typer.Option(help="Examples per step.", min=1)] = 64,
    lr: Annotated[float, typer.Option(help="Peak learning rate.")] = 3e-4,
    text_len: Annotated[int, typer.Option(help="Text segment length in tokens, <bos> included.")] = 32,
    vocab_size: Annotated[int, typer.Option(help="BPE vocabulary size of the caption tokenizer.")] = 4096,
    n_layer: Annotated[int, typer.Option(help="Transformer blocks.")] = 12,
    n_head: Annotated[int, typer.Option(help="Attention heads.")] = 8,
    n_embd: Annotated[int, typer.Option(help="Model width.")] = 512,
    caption_dropout: Annotated[float, typer.Option(help="Share of captions dropped, for guidance.")] = 0.1,
    dtype: Annotated[str, typer.Option(help="Tensor type of the saved checkpoint: float32, float16, bfloat16.")] = (
        "float32"
    ),
    checkpoint_every: Annotated[int, typer.Option(help="Steps between checkpoints and sample grids.", min=1)] = 1000,
    sample_prompt: Annotated[
        list[str] | None, typer.Option(help="Prompt for the sample grids; repeat for more (up to 4).")
    ] = None,
    seed: Annotated[int, typer.Option(help="Seed for initialisation and batch order.")] = 0,
    device: Annotated[str, typer.Option(help="cpu, cuda, cuda:N or auto.")] = "auto",
    amp: AmpOption = "none",
    resume: Annotated[bool, typer.Option(help="Continue from the training state saved beside --out.")] = False,
) -> None:
    """Train the transformer on text tokens followed by VAE image tokens."""
    from dalle.model.checkpoint import load_checkpoint
    from dalle.model.config import TransformerConfig
    from dalle.model.data import load_codes
    from dalle.model.encoding import encode_images, vae_fingerprint
    from dalle.model.errors import DatasetError
    from dalle.model.pipeline import resolve_device
    from dalle.model.train import TrainSettings, build_tokenizer
    from dalle.model.train import train_transformer as run

    resolved = str(resolve_device(device))
    settings = TrainSettings(
        steps=steps,
        batch_size=batch_size,
        lr=lr,
        warmup_steps=min(500, steps // 10),
        checkpoint_every=checkpoint_every,
        seed=seed,
        device=resolved,
        amp=amp,
    )
    settings.validate()
    vae_model = load_checkpoint(vae).vae
    if data.is_file():
        codes_file = load_codes(data)
        if codes_file.vae_fingerprint != vae_fingerprint(vae_model):
            raise DatasetError(
                f"codes file {data} was encoded with a different VAE than {vae}; "
                f"run `dalle encode` again with --model {vae}"
            )
        codes, captions = codes_file.codes, codes_file.captions
    else:
        images, captions = _load_dataset(data, vae_model.config.image_size)
        codes = encode_images(vae_model.to(resolved), images, batch_size=256)
    logger.info("training the tokenizer on %d captions", sum(len(c) for c in captions))
    tokenizer = build_tokenizer(captions, text_len, vocab_size)
    config = TransformerConfig(
        text_vocab_size=tokenizer.vocab_size,
        text_len=text_len,
        image_vocab_size=vae_model.config.codebook_size,
        grid_size=vae_model.config.grid_size,
        n_layer=n_layer,
        n_head=n_head,
        n_embd=n_embd,
        caption_dropout=caption_dropout,
    )
    prepare_out(out)
    log = _LogEvery("transformer", max(1, steps // 50))
    with progress_bar("train transformer", steps) as update:

        def report(p: Any) -> None:
            update(p.step, loss=p.loss, **p.metrics)
            log(p.step, p.total, p.loss, p.metrics)

        run(
            codes,
            captions,
            vae_model.cpu(),
            config,
            settings,
            out,
            tokenizer,
            resume=resume,
            sample_prompts=sample_prompt,
            dtype=dtype,
            progress=report,
        )
    emit(str(out))


train_app.command("decoder", epilog=DECODER_EXAMPLES)(train_decoder)
train_app.command("judge", epilog=JUDGE_EXAMPLES)(train_judge)


def encode(
    data: DataArg,
    model: Annotated[Path, typer.Option(help="Checkpoint holding the VAE.")],
    output: Annotated[Path, typer.Option("--output", "-o", help="Codes file to write (.safetensors).")] = Path(
        "codes.safetensors"
    ),
    reconstruct: Annotated[
        Path | None, typer.Option(help="Also write VAE reconstructions into this folder, for inspection.")
    ] = None,
    batch_size: Annotated[int, typer.Option(help="Images encoded together.", min=1)] = 256,
    device: Annotated[str, typer.Option(help="cpu, cuda, cuda:N or auto.")] = "auto",
) -> None:
    """Turn an image folder into VAE token codes that transformer training can read.

    Example:  dalle encode data/toy --model vae.safetensors -o codes.safetensors --reconstruct recon/
    """
    from dalle.model.checkpoint import load_checkpoint
    from dalle.model.data import save_codes, scan_folder
    from dalle.model.encoding import encode_images, vae_fingerprint, write_reconstructions
    from dalle.model.pipeline import resolve_device

    vae = load_checkpoint(model).vae.to(resolve_device(device))
    images, captions = _load_dataset(data, vae.config.image_size)
    codes = encode_images(vae, images, batch_size)
    output.parent.mkdir(parents=True, exist_ok=True)
    save_codes(output, codes.cpu(), captions, vae_fingerprint(vae))
    logger.info("wrote %d code grids of %dx%d to %s", codes.shape[0], codes.shape[1], codes.shape[2], output)
    if reconstruct is not None:
        examples = scan_folder(data)
        psnr = write_reconstructions(vae, images, codes, [e.image for e in examples], Path(data), reconstruct)
        logger.info("wrote reconstructions to %s; mean PSNR %.2f dB", reconstruct, psnr)
    emit(str(output))


@data_app.command("toyworld", epilog="Example:\n\n  dalle data toyworld data/toy --count 20000 --seed 0")
def toyworld(
    out: Annotated[
        Path, typer.Argument(help="Folder to write images and captions into.", show_default=False, metavar="OUT")
    ],
    count: Annotated[int, typer.Option(help="Number of images.", min=1)] = 1000,
    seed: Annotated[int, typer.Option(help="Seed; the same seed writes the same dataset.")] = 0,
    image_size: Annotated[int, typer.Option(help="Side of the images, in pixels.", min=16)] = 64,
    include_held_out: Annotated[
        bool, typer.Option(help="Also draw the held-out (subject, colour, outfit) combinations.")
    ] = False,
) -> None:
    """Write a toy-world dataset: NNNNNN.png, NNNNNN.txt captions and attributes.jsonl."""
    from dalle.model.toyworld import write_dataset

    with progress_bar("rendering", count) as update:
        write_dataset(out, count, seed, image_size, include_held_out=include_held_out, progress=lambda d, _t: update(d))
    logger.info("wrote %d images to %s", count, out)
    emit(str(out))
