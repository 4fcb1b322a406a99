"""Command-line options shared between commands, declared once so their help and defaults agree."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

Temperature = Annotated[float, typer.Option(help="Sampling temperature; 0 picks the most likely token.")]
TopK = Annotated[int | None, typer.Option(help="Sample only from the k most likely tokens.")]
TopP = Annotated[float | None, typer.Option(help="Sample from the smallest token set with this total probability.")]
GuidanceScale = Annotated[
    float, typer.Option(help="Classifier-free guidance; 1 turns it off, higher follows the prompt more.")
]
Device = Annotated[str, typer.Option(help="cpu, cuda, cuda:N or auto.")]

# Flags of the sampling settings, so that their errors name the option a user typed.
SAMPLING_FLAGS = {
    "temperature": "--temperature",
    "top_k": "--top-k",
    "top_p": "--top-p",
    "guidance_scale": "--guidance-scale",
}

# Shared by the training commands.
DataArg = Annotated[
    Path, typer.Argument(help="Folder of images with same-stem .txt captions.", show_default=False, metavar="DATA")
]
AmpOption = Annotated[
    str,
    typer.Option(
        help="none (float32), bf16 (bfloat16 autocast), or auto: bf16 where the device runs it natively, else none."
    ),
]


def parse_widths(flag: str, text: str, example: str) -> tuple[int, ...]:
    """Parse comma-separated channel widths for `flag`; `example` shows the expected form."""
    from dalle.model.errors import ConfigError

    rule = f"expected positive integers like {example}"
    try:
        widths = tuple(int(part) for part in text.split(","))
    except ValueError as exc:
        raise ConfigError(f"invalid {flag} {text!r}: {rule}") from exc
    if any(width <= 0 for width in widths):
        raise ConfigError(f"invalid {flag} {text!r}: {rule}")
    return widths
