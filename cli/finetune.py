"""`dalle train decoder`: train a checkpoint's VAE decoder for sharper images, keeping its tokens."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Annotated, Any

import typer

from .console import emit, progress_bar
from .options import AmpOption, DataArg, parse_widths

logger = logging.getLogger("dalle.cli")

EXAMPLES = """Examples:

  dalle train decoder data/toy --model dalle.safetensors -o sharp.safetensors

  dalle train decoder data/toy --model vae.safetensors -o vae2.safetensors

  dalle train decoder data/toy --model m.safetensors -o big.safetensors \\
      --new-decoder 384,192,64
"""


def train_decoder(
    data: DataArg,
    model: Annotated[Path, typer.Option(help="Checkpoint whose decoder to train: a VAE or a full model.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Checkpoint to write (.safetensors).")],
    steps: Annotated[int, typer.Option(help="Optimizer steps.", min=1)] = 2000,
    batch_size: Annotated[int, typer.Option(help="Images per step.", min=1)] = 32,
    lr: Annotated[float, typer.Option(help="Peak learning rate.")] = 5e-4,
    dtype: Annotated[
        str | None,
        typer.Option(
            help="Tensor type of the saved checkpoint: float32, float16 or bfloat16. It applies to the frozen "
            "encoder and codebook too, so a coarser type than --model's can change a few tokens. [default: as --model]"
        ),
    ] = None,
    checkpoint_every: Annotated[int, typer.Option(help="Steps between checkpoints and sample grids.", min=1)] = 500,
    seed: Annotated[int, typer.Option(help="Seed for the batch order.")] = 0,
    device: Annotated[str, typer.Option(help="cpu, cuda, cuda:N or auto.")] = "auto",
    amp: AmpOption = "none",
    resume: Annotated[bool, typer.Option(help="Continue from the training state saved beside --out.")] = False,
    new_decoder: Annotated[
        str | None,
        typer.Option(
            help="Train a new decoder from random weights instead, with these comma-separated widths, coarsest "
            "level first: one per encoder level, as many as the --hidden-dims the VAE was trained with "
            "(e.g. 384,192,64).",
            show_default=False,
        ),
    ] = None,
    new_decoder_res_blocks: Annotated[
        int | None,
        typer.Option(help="Residual blocks per level of the new decoder; only with --new-decoder. [default: 2]"),
    ] = None,
) -> None:
    """Train only the VAE decoder, on mean squared error, so reconstructions gain PSNR.

    The encoder and codebook stay frozen: images keep their tokens, and a
    transformer in the checkpoint stays valid and is saved unchanged. The old
    decoder is fine-tuned, or with --new-decoder a new one replaces it.
    """
    from dalle.model.checkpoint import DTYPES, load_checkpoint
    from dalle.model.errors import ConfigError
    from dalle.model.finetune import NewDecoder, finetune_decoder
    from dalle.model.pipeline import resolve_device
    from dalle.model.train import TrainSettings

    from .train import _load_dataset, _LogEvery, prepare_out

    if dtype is not None and dtype not in DTYPES:
        raise ConfigError(f"invalid --dtype {dtype!r}: use float32, float16 or bfloat16, or leave it out")
    if new_decoder_res_blocks is not None and new_decoder is None:
        raise ConfigError("--new-decoder-res-blocks needs --new-decoder WIDTHS; add it, or leave both out to fine-tune")
    if new_decoder_res_blocks is not None and new_decoder_res_blocks < 0:
        raise ConfigError(f"invalid --new-decoder-res-blocks {new_decoder_res_blocks}: use 0 or more")
    settings = TrainSettings(
        steps=steps,
        batch_size=batch_size,
        lr=lr,
        warmup_steps=min(100, steps // 10),
        checkpoint_every=checkpoint_every,
        seed=seed,
        device=str(resolve_device(device)),
        amp=amp,
    )
    settings.validate()
    prepare_out(out)
    checkpoint = load_checkpoint(model)
    shape = None
    if new_decoder is not None:
        widths = parse_widths("--new-decoder", new_decoder, "384,192,64")
        levels = len(checkpoint.vae.config.hidden_dims)
        if len(widths) != levels:
            raise ConfigError(
                f"invalid --new-decoder {new_decoder!r}: {model} has {levels} encoder levels, so give {levels} widths"
            )
        shape = NewDecoder(widths, 2 if new_decoder_res_blocks is None else new_decoder_res_blocks)
    images, _ = _load_dataset(data, checkpoint.vae.config.image_size)
    log = _LogEvery("decoder", max(1, steps // 20))
    with progress_bar("train decoder", steps) as update:

        def report(p: Any) -> None:
            update(p.step, loss=p.loss)
            log(p.step, p.total, p.loss, p.metrics)

        finetune_decoder(
            images,
            checkpoint,
            settings,
            out,
            dtype=dtype or checkpoint.dtype,
            resume=resume,
            progress=report,
            new_decoder=shape,
        )
    emit(str(out))
