"""Command-line options shared by `generate` and `eval`, declared once so their help and defaults agree."""

from __future__ import annotations

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
