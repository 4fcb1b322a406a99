"""Training and accuracy checks of the judge, on toy-world scenes rendered on the fly.

Every training batch is drawn fresh from `random_scene`, held-out combinations
included, because the judge must also recognise the pictures that the
generator never saw. Accuracy is measured on renders from another seed.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable

import torch
import torch.nn.functional as F

from .errors import ConfigError
from .judge import HEADS, Judge, JudgeConfig
from .toyworld import Scene, random_scene, render
from .train import ProgressFn, TrainProgress, TrainSettings, learning_rate

logger = logging.getLogger(__name__)

# Share of each training batch that is blurred, so that the judge also reads
# soft pictures such as VAE decodes.
BLUR_SHARE = 0.5


def render_batch(rng: random.Random, count: int, image_size: int) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Render `count` random scenes; return float images (N, 3, S, S) in [-1, 1] and label indices per head."""
    import numpy as np

    scenes: list[Scene] = [random_scene(rng, include_held_out=True) for _ in range(count)]
    arrays = [np.asarray(render(scene, image_size, seed=rng.randrange(1 << 31))) for scene in scenes]
    images = torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).float() / 127.5 - 1.0
    labels = {
        name: torch.tensor([names.index(getattr(scene, name)) for scene in scenes]) for name, names in HEADS.items()
    }
    return images, labels


def fresh_seed(purpose: str, seed: int) -> str:
    """Seed for renders that must differ from training data, which always draws from integer seeds."""
    return f"{purpose}-{seed}"


def _augment(images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Blur the first BLUR_SHARE of the batch (down- and upsampling) and add mild Gaussian noise to all."""
    size = images.shape[-1]
    count = int(images.shape[0] * BLUR_SHARE)
    if count:
        low = int(torch.randint(size * 3 // 8, size * 3 // 4 + 1, (1,), generator=generator))
        soft = F.interpolate(images[:count], size=(low, low), mode="bilinear", antialias=True, align_corners=False)
        soft = F.interpolate(soft, size=(size, size), mode="bilinear", align_corners=False)
        images = torch.cat([soft, images[count:]])
    sigma = torch.rand(images.shape[0], 1, 1, 1, generator=generator) * 0.06
    noise = torch.randn(images.shape, generator=generator) * sigma
    return (images + noise).clamp(-1.0, 1.0)


def train_judge(
    settings: TrainSettings,
    config: JudgeConfig | None = None,
    progress: ProgressFn | None = None,
) -> Judge:
    """Train a judge from scratch for `settings.steps` steps of freshly rendered scenes.

    The same settings and seed give the same judge on the same torch build and thread count.
    """
    settings.validate()
    config = config or JudgeConfig()
    torch.manual_seed(settings.seed)
    generator = torch.Generator().manual_seed(settings.seed)
    rng = random.Random(settings.seed)
    judge = Judge(config)
    judge.train()
    optimizer = torch.optim.AdamW(judge.parameters(), lr=settings.lr, weight_decay=settings.weight_decay)
    logger.info(
        "training the judge: %d steps of %d renders, %d parameters",
        settings.steps,
        settings.batch_size,
        sum(p.numel() for p in judge.parameters()),
    )

    started = time.monotonic()
    for step in range(settings.steps):
        for group in optimizer.param_groups:
            group["lr"] = learning_rate(settings, step)
        images, labels = render_batch(rng, settings.batch_size, config.image_size)
        logits = judge(_augment(images, generator))
        losses = {name: F.cross_entropy(logits[name], labels[name]) for name in HEADS}
        loss = torch.stack(list(losses.values())).sum()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

        if progress is not None:
            correct = [(logits[name].argmax(-1) == labels[name]).float().mean().item() for name in HEADS]
            metrics = {"batch_accuracy": sum(correct) / len(correct), "lr": learning_rate(settings, step)}
            progress(TrainProgress(step + 1, settings.steps, loss.item(), metrics))
    logger.info("judge trained in %.0f s", time.monotonic() - started)
    judge.eval()
    return judge


def judge_accuracy(
    judge: Judge,
    count: int = 1000,
    seed: int = 1,
    batch_size: int = 250,
    progress: Callable[[int, int], None] | None = None,
) -> dict[str, float]:
    """Return the judge's accuracy per head on `count` fresh renders drawn with `seed`.

    The renders come from a string-seeded stream, independent of the
    integer-seeded stream of `train_judge`, so they are new to the judge
    whatever the seed.
    """
    if count < 1:
        raise ConfigError(f"invalid count={count}: must be >= 1")
    rng = random.Random(fresh_seed("judge-accuracy", seed))
    correct = dict.fromkeys(HEADS, 0)
    done = 0
    while done < count:
        rows = min(batch_size, count - done)
        images, labels = render_batch(rng, rows, judge.config.image_size)
        predicted = judge.predict(images)
        for name in HEADS:
            correct[name] += int((predicted[name] == labels[name]).sum())
        done += rows
        if progress is not None:
            progress(done, count)
    return {name: correct[name] / count for name in HEADS}
