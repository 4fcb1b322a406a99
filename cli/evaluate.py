"""`dalle eval`: measure prompt adherence, VAE reconstruction and diversity of a model.

The result table goes to stderr; `--json` also prints one JSON document on
stdout. The library side is dalle.model.evaluate.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from .console import emit, stderr_console
from .options import SAMPLING_FLAGS, Device, GuidanceScale, Temperature, TopK, TopP

if TYPE_CHECKING:
    from dalle.model.evaluate import EvalResult

logger = logging.getLogger("dalle.cli")

EXAMPLES = """Examples:

  dalle eval

  dalle eval --model build/weights/dalle-toy.safetensors --prompts 240 --images-per-prompt 4 --seed 1

  dalle eval --json > eval.json
"""

STAGE_NAMES = {
    "judge": "judge accuracy on fresh renders",
    "vae": "VAE reconstructions of fresh renders",
    "generate": "image tokens for the prompt set",
    "diversity": "image tokens for the diversity prompt",
}
GROUP_TITLES = {"all": "all", "seen": "seen", "held_out": "held out", "english": "English", "chinese": "Chinese"}


@contextmanager
def _stage_progress() -> Iterator[Callable[[str, int, int], None]]:
    """Yield `update(stage, done, total)`: one rich bar per stage on a terminal, else one log line per stage."""
    console = stderr_console()
    if not console.is_terminal:
        started: set[str] = set()

        def log_stage(stage: str, _done: int, _total: int) -> None:
            if stage not in started:
                started.add(stage)
                logger.info("eval: %s", STAGE_NAMES[stage])

        yield log_stage
        return

    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    columns = [TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn()]
    with Progress(*columns, console=console, transient=True) as progress:
        tasks: dict[str, Any] = {}

        def update(stage: str, done: int, total: int) -> None:
            if stage not in tasks:
                tasks[stage] = progress.add_task(STAGE_NAMES[stage], total=total)
            progress.update(tasks[stage], completed=done, total=total)

        yield update


def _percent(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.1f}%"


def print_tables(result: EvalResult) -> None:
    """Print the judge check, the adherence scores per group and the image numbers on stderr."""
    from dalle.model.judge import ATTRIBUTES, REQUIRED_ACCURACY
    from rich import box
    from rich.table import Table

    console = stderr_console()
    if not console.is_terminal:
        console.width = 100  # a log file has no width; 100 columns fit the adherence table unwrapped
    judge_table = Table(title=f"Judge accuracy on fresh renders (required: {100 * REQUIRED_ACCURACY:.0f}%)")
    judge_table.add_column("head")
    judge_table.add_column("accuracy", justify="right")
    judge_table.add_column("verdicts")
    judge_table.add_column("on VAE reconstructions", justify="right")
    for name in ATTRIBUTES:
        status = "counted" if result.judge_trusted[name] else "not counted"
        reconstructed = _percent(result.judge_accuracy_on_reconstructions[name])
        judge_table.add_row(name, _percent(result.judge_accuracy[name]), status, reconstructed)
    console.print(judge_table)

    groups = result.groups
    table = Table(
        box=box.SIMPLE_HEAD,
        title="Prompt adherence: images judged correct (images scored)",
        caption="-: not scored, because no prompt of the group states it or the judge head is not counted",
    )
    table.add_column("attribute")
    for name in groups:
        table.add_column(GROUP_TITLES[name], justify="right")
    for attribute in ATTRIBUTES:
        cells = []
        for score in groups.values():
            count = score.scored[attribute]
            trusted = result.judge_trusted[attribute]
            cells.append(f"{_percent(score.accuracy[attribute])} ({count})" if trusted else "-")
        table.add_row(attribute, *cells)
    table.add_row("all correct", *[f"{_percent(s.all_correct)} ({s.images})" for s in groups.values()])
    console.print(table)

    diversity = result.diversity
    console.print(f"VAE reconstruction PSNR on fresh renders: {result.vae_psnr_db:.2f} dB")
    console.print(
        f"Diversity of {diversity.images} images of {diversity.prompt!r}: "
        f"{_percent(diversity.distinct_token_grids)} distinct token grids, "
        f"mean pairwise pixel distance {diversity.mean_pairwise_distance:.4f} (pixels in [0, 1])"
    )
    console.print(f"Finished in {result.seconds:.0f} s")


def evaluate(
    model: Annotated[Path | None, typer.Option(help="Checkpoint (.safetensors). Default: the shipped model.")] = None,
    judge: Annotated[
        Path | None, typer.Option(help="Judge file from `dalle train judge`. Default: the shipped judge.")
    ] = None,
    prompts: Annotated[int, typer.Option(help="Prompts in the fixed, seeded prompt set; at least 22.")] = 120,
    images_per_prompt: Annotated[int, typer.Option(help="Images generated per prompt.", min=1)] = 8,
    seed: Annotated[int, typer.Option(help="Seed of the prompt set, the images and the fresh renders.", min=0)] = 0,
    json_output: Annotated[bool, typer.Option("--json", help="Also print the result as one JSON document.")] = False,
    temperature: Temperature = 0.7,
    top_k: TopK = None,
    top_p: TopP = None,
    guidance_scale: GuidanceScale = 2.0,
    judge_renders: Annotated[
        int, typer.Option(help="Fresh renders for the judge's accuracy check before scoring.", min=1)
    ] = 1000,
    vae_renders: Annotated[
        int, typer.Option(help="Fresh renders for the VAE reconstruction PSNR and the judge on reconstructions.", min=1)
    ] = 256,
    diversity_images: Annotated[int, typer.Option(help="Images of one prompt for the diversity numbers.", min=2)] = 16,
    batch_size: Annotated[int, typer.Option(help="Images sampled together.", min=1)] = 16,
    candidates: Annotated[
        int, typer.Option(help="Samples per image; the one with the best PMI score is judged.", min=1)
    ] = 1,
    device: Device = "cpu",
) -> None:
    """Score a model with the judge: per-attribute accuracy on seen and held-out prompts, in English and Chinese."""
    from dalle.model.evaluate import EvalSettings, run_evaluation
    from dalle.model.judge import default_judge_path, load_judge
    from dalle.model.pipeline import TextToImage, default_model_path
    from dalle.model.sampling import SamplingSettings

    settings = EvalSettings(
        prompts=prompts,
        images_per_prompt=images_per_prompt,
        seed=seed,
        judge_renders=judge_renders,
        vae_renders=vae_renders,
        diversity_images=diversity_images,
        batch_size=batch_size,
        candidates=candidates,
        sampling=SamplingSettings(temperature=temperature, top_k=top_k, top_p=top_p, guidance_scale=guidance_scale),
    )
    settings.sampling.validate(None, names=SAMPLING_FLAGS)
    settings.validate()
    judge_path = judge or default_judge_path()
    model_path = model or default_model_path()
    pipe = TextToImage.from_pretrained(model_path, device=device)
    judge_model, _ = load_judge(judge_path)
    settings.sampling.validate(pipe.transformer.config.image_vocab_size, names=SAMPLING_FLAGS)
    logger.info("evaluating %s: %d prompts x %d images, seed %d", model_path, prompts, images_per_prompt, settings.seed)

    with _stage_progress() as update:
        result = run_evaluation(pipe, judge_model, settings, model_path, judge_path, progress=update)
    print_tables(result)
    if json_output:
        emit(json.dumps(result.to_json(), ensure_ascii=False))
