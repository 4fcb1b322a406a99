"""`dalle train judge`: train the attribute classifier that `dalle eval` scores images with."""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Annotated, Any

import typer

from .console import emit, progress_bar

logger = logging.getLogger("dalle.cli")

EXAMPLES = """Example:

  dalle train judge weights/judge.safetensors --steps 1000 --seed 0
"""


def train_judge(
    out: Annotated[Path, typer.Argument(help="Judge file to write (.safetensors).", show_default=False, metavar="OUT")],
    steps: Annotated[int, typer.Option(help="Optimizer steps.", min=1)] = 1000,
    batch_size: Annotated[int, typer.Option(help="Fresh renders per step.", min=1)] = 64,
    lr: Annotated[float, typer.Option(help="Peak learning rate.")] = 2e-3,
    seed: Annotated[int, typer.Option(help="Seed for initialisation and the rendered scenes.", min=0)] = 0,
    check_renders: Annotated[
        int, typer.Option(help="Fresh renders, from another seed, for the accuracy check after training.", min=1)
    ] = 2000,
    dtype: Annotated[str, typer.Option(help="Tensor type of the saved file: float16 or float32.")] = "float16",
) -> None:
    """Train the judge on toy-world scenes rendered on the fly, then report its accuracy per head."""
    from dalle.model.errors import ConfigError
    from dalle.model.judge import REQUIRED_ACCURACY, JudgeConfig, save_judge
    from dalle.model.judge_training import judge_accuracy
    from dalle.model.judge_training import train_judge as run
    from dalle.model.train import TrainSettings

    if dtype not in ("float16", "float32"):
        raise ConfigError(f"invalid --dtype {dtype!r}: use float16 or float32")
    settings = TrainSettings(
        steps=steps, batch_size=batch_size, lr=lr, warmup_steps=min(100, steps // 10), seed=seed, device="cpu"
    )
    settings.validate()
    out.parent.mkdir(parents=True, exist_ok=True)
    config = JudgeConfig()

    started = time.monotonic()
    every = max(1, steps // 20)
    with progress_bar("train judge", steps) as update:

        def report(p: Any) -> None:
            update(p.step, loss=p.loss, **p.metrics)
            if p.step % every == 0 or p.step == p.total:
                logger.info(
                    "judge step %d/%d loss %.4f batch accuracy %.3f elapsed %.0fs",
                    p.step,
                    p.total,
                    p.loss,
                    p.metrics["batch_accuracy"],
                    time.monotonic() - started,
                )

        judge = run(settings, config, progress=report)
    train_seconds = time.monotonic() - started

    accuracy = judge_accuracy(judge, check_renders, seed)
    for name, value in accuracy.items():
        verdict = "ok" if value >= REQUIRED_ACCURACY else f"below the required {100 * REQUIRED_ACCURACY:.0f}%"
        logger.info("judge accuracy on %d fresh renders: %s %.2f%% (%s)", check_renders, name, 100 * value, verdict)
    weak = [name for name, value in accuracy.items() if value < REQUIRED_ACCURACY]
    if weak:
        logger.warning(
            "heads %s are below %.0f%% on fresh renders, so `dalle eval` will not count their verdicts; "
            "train longer with a larger --steps",
            ", ".join(weak),
            100 * REQUIRED_ACCURACY,
        )

    training = {
        "kind": "judge",
        "steps": steps,
        "batch_size": batch_size,
        "lr": lr,
        "seed": seed,
        "train_seconds": round(train_seconds, 1),
        "check_renders": check_renders,
        "accuracy": accuracy,
    }
    save_judge(out, judge, training=training, dtype=dtype)
    emit(str(out))
