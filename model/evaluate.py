"""Measurement of what a model draws: prompt adherence, VAE reconstruction and diversity.

In the spirit of the GenEval benchmark, on the toy world where ground truth is
known: a fixed, seeded prompt set (eval_prompts.py) is sampled through
TextToImage, and the judge (judge.py) reads every attribute back from each
image. A head's verdicts count only when the judge is at least
REQUIRED_ACCURACY accurate on fresh renders in the same run.
"""

from __future__ import annotations

import logging
import math
import random
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from itertools import combinations
from pathlib import Path
from typing import Any

import torch

from .data import to_pil
from .encoding import encode_images, psnr
from .errors import ConfigError
from .eval_prompts import EvalPrompt, build_prompt_set, check_prompt_count
from .judge import ATTRIBUTES, HEADS, REQUIRED_ACCURACY, Judge, images_to_tensor
from .judge_training import fresh_seed, judge_accuracy
from .pipeline import TextToImage
from .sampling import SamplingSettings, sample_image_tokens
from .toyworld import random_scene, render

logger = logging.getLogger(__name__)

RESULT_FORMAT = "dalle-eval"
RESULT_VERSION = 1
GROUPS = ("all", "seen", "held_out", "english", "chinese")
DIVERSITY_PROMPT = "orange dinosaur in a suit"

# (stage, done, total), in the order judge, vae, generate, diversity. The judge
# and vae stages count renders, the others count sampled image tokens.
EvalProgress = Callable[[str, int, int], None]


@dataclass
class EvalSettings:
    """Sample counts, seed and sampling settings of one evaluation run."""

    prompts: int = 120
    images_per_prompt: int = 8
    seed: int = 0
    judge_renders: int = 1000  # fresh renders for the judge's accuracy check
    vae_renders: int = 256  # fresh renders for the VAE reconstruction check
    diversity_images: int = 16  # images of DIVERSITY_PROMPT for the diversity numbers
    batch_size: int = 16
    sampling: SamplingSettings = field(default_factory=SamplingSettings)
    candidates: int = 1  # samples per image, the best by PMI score kept (see rerank.py)

    def validate(self) -> None:
        check_prompt_count(self.prompts)
        for name in ("images_per_prompt", "judge_renders", "vae_renders", "batch_size", "candidates"):
            if getattr(self, name) < 1:
                raise ConfigError(f"invalid {name}={getattr(self, name)}: must be >= 1")
        if self.diversity_images < 2:
            raise ConfigError(f"invalid diversity_images={self.diversity_images}: must be >= 2 to compare pairs")
        if self.seed < 0:
            raise ConfigError(f"invalid seed={self.seed}: must be >= 0")


@dataclass
class GroupScore:
    """Scores of the images whose prompts belong to one group (seen, held out, English...)."""

    prompts: int
    images: int
    accuracy: dict[str, float | None]  # attribute -> share judged correct; None when unscored
    scored: dict[str, int]  # attribute -> images whose prompt states it
    all_correct: float | None  # share of images with every stated, trusted attribute correct


@dataclass
class Diversity:
    """Spread of several images of one prompt, so that a model that copies one picture shows."""

    prompt: str
    images: int
    distinct_token_grids: float  # distinct grids / images; 1.0 when no two grids are equal
    mean_pairwise_distance: float  # mean absolute pixel difference over all pairs, pixels in [0, 1]


@dataclass
class EvalResult:
    """Everything `dalle eval` measured, with the settings that produced it."""

    model: str
    judge: str
    settings: dict[str, Any]
    judge_accuracy: dict[str, float]
    judge_trusted: dict[str, bool]
    groups: dict[str, GroupScore]
    vae_psnr_db: float
    judge_accuracy_on_reconstructions: dict[str, float]
    diversity: Diversity
    samples: list[dict[str, Any]]
    seconds: float

    def to_json(self) -> dict[str, Any]:
        """Return the result as a JSON-ready dict; format `dalle-eval`, version 1."""
        return {
            "format": RESULT_FORMAT,
            "version": RESULT_VERSION,
            "model": self.model,
            "judge": self.judge,
            "settings": self.settings,
            "judge_required_accuracy": REQUIRED_ACCURACY,
            "judge_accuracy": self.judge_accuracy,
            "judge_trusted": self.judge_trusted,
            "groups": {name: asdict(score) for name, score in self.groups.items()},
            # A lossless reconstruction has infinite PSNR, which JSON cannot hold.
            "vae_psnr_db": self.vae_psnr_db if math.isfinite(self.vae_psnr_db) else None,
            "judge_accuracy_on_reconstructions": self.judge_accuracy_on_reconstructions,
            "diversity": asdict(self.diversity),
            "samples": self.samples,
            "seconds": self.seconds,
        }


@torch.inference_mode()
def check_vae(pipe: TextToImage, judge: Judge, count: int, seed: int) -> tuple[float, dict[str, float]]:
    """Encode and decode `count` fresh renders with the model's VAE.

    Returns the reconstruction PSNR in dB (from the mean squared error over all
    renders) and the judge's accuracy per head on the reconstructions, which
    bounds what the judge can read from any image that this VAE decodes.
    """
    import numpy as np

    rng = random.Random(fresh_seed("vae-check", seed))
    scenes = [random_scene(rng, include_held_out=True) for _ in range(count)]
    size = pipe.image_size
    arrays = [np.asarray(render(scene, size, seed=rng.randrange(1 << 31))) for scene in scenes]
    images = torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).contiguous()  # uint8 (N, 3, S, S)
    codes = encode_images(pipe.vae, images, batch_size=64)
    decoded = torch.cat([pipe.vae.decode(codes[i : i + 64].to(pipe.device)).cpu() for i in range(0, count, 64)])
    psnr_db = psnr(decoded, images.float() / 127.5 - 1.0)

    predicted = judge.predict(images_to_tensor(to_pil(decoded), judge.config.image_size))
    accuracy = {}
    for name, labels in HEADS.items():
        truth = torch.tensor([labels.index(getattr(scene, name)) for scene in scenes])
        accuracy[name] = (predicted[name] == truth).float().mean().item()
    return psnr_db, accuracy


@torch.inference_mode()
def measure_diversity(
    pipe: TextToImage,
    prompt: str,
    count: int,
    seed: int,
    settings: SamplingSettings,
    progress: Callable[[int, int], None] | None = None,
) -> Diversity:
    """Sample `count` images of one prompt with seeds seed, seed+1, ... and compare them.

    Sampling goes through sample_image_tokens directly, because the token
    grids themselves are compared and TextToImage returns only pictures.
    """
    text = torch.tensor([pipe.tokenizer.encode(prompt).ids] * count, device=pipe.device)
    empty = torch.tensor(pipe.tokenizer.empty(), device=pipe.device)
    seeds = [seed + i for i in range(count)]
    tokens = sample_image_tokens(pipe.transformer, text, empty, seeds, settings, progress=progress).cpu()
    grid = pipe.vae.config.grid_size
    pixels = (pipe.vae.decode(tokens.view(-1, grid, grid).to(pipe.device)).cpu().clamp(-1, 1) + 1) / 2
    distinct = len({tuple(row.tolist()) for row in tokens})
    distances = [(pixels[i] - pixels[j]).abs().mean().item() for i, j in combinations(range(count), 2)]
    return Diversity(
        prompt=prompt,
        images=count,
        distinct_token_grids=distinct / count,
        mean_pairwise_distance=sum(distances) / len(distances),
    )


def _group_members(prompt: EvalPrompt) -> tuple[str, ...]:
    language = "english" if prompt.language == "en" else "chinese"
    return ("all", "held_out" if prompt.held_out else "seen", language)


def score_samples(samples: list[dict[str, Any]], trusted: dict[str, bool]) -> dict[str, GroupScore]:
    """Aggregate per-image verdicts into per-group scores, counting only trusted heads."""
    scores: dict[str, GroupScore] = {}
    for group in GROUPS:
        members = [s for s in samples if group in s["groups"]]
        accuracy: dict[str, float | None] = {}
        scored: dict[str, int] = {}
        for name in ATTRIBUTES:
            stated = [s for s in members if name in s["expected"]]
            scored[name] = len(stated)
            hits = sum(s["predicted"][name] == s["expected"][name] for s in stated)
            accuracy[name] = hits / len(stated) if stated and trusted[name] else None
        all_correct = None
        if members and any(trusted.values()):
            hits = sum(all(s["correct"][n] for n in s["expected"] if trusted[n]) for s in members)
            all_correct = hits / len(members)
        scores[group] = GroupScore(
            prompts=len({s["prompt"] for s in members}),
            images=len(members),
            accuracy=accuracy,
            scored=scored,
            all_correct=all_correct,
        )
    return scores


def generate_and_judge(
    pipe: TextToImage,
    judge: Judge,
    prompts: list[EvalPrompt],
    settings: EvalSettings,
    progress: Callable[[int, int], None] | None = None,
) -> list[dict[str, Any]]:
    """Draw `images_per_prompt` images of every prompt and record the judge's verdict on each."""
    texts = [p.text for p in prompts for _ in range(settings.images_per_prompt)]
    owners = [p for p in prompts for _ in range(settings.images_per_prompt)]
    seeds = [settings.seed + i for i in range(len(texts))]
    images = pipe.generate_with_seeds(
        texts, seeds, settings.sampling, settings.batch_size, progress, candidates=settings.candidates
    )
    predicted = judge.predict(images_to_tensor(images, judge.config.image_size))

    samples = []
    for index, (prompt, seed) in enumerate(zip(owners, seeds, strict=True)):
        labels = {name: HEADS[name][int(predicted[name][index])] for name in ATTRIBUTES}
        samples.append(
            {
                "prompt": prompt.text,
                "language": prompt.language,
                "held_out": prompt.held_out,
                "seed": seed,
                "groups": list(_group_members(prompt)),
                "expected": prompt.expected,
                "predicted": labels,
                "correct": {name: labels[name] == value for name, value in prompt.expected.items()},
            }
        )
    return samples


def run_evaluation(
    pipe: TextToImage,
    judge: Judge,
    settings: EvalSettings,
    model_name: str | Path = "",
    judge_name: str | Path = "",
    progress: EvalProgress | None = None,
) -> EvalResult:
    """Check the judge on renders, then measure the VAE, prompt adherence and diversity of `pipe`."""
    settings.validate()
    settings.sampling.validate(pipe.transformer.config.image_vocab_size)
    prompts = build_prompt_set(settings.prompts, settings.seed)
    started = time.monotonic()

    def stage(name: str) -> Callable[[int, int], None]:
        return lambda done, total: progress(name, done, total) if progress is not None else None

    if pipe.image_size != judge.config.image_size:
        logger.warning(
            "the model draws %dx%d images and the judge reads %dx%d; images are resized for the judge",
            pipe.image_size,
            pipe.image_size,
            judge.config.image_size,
            judge.config.image_size,
        )
    accuracy = judge_accuracy(judge, settings.judge_renders, settings.seed, progress=stage("judge"))
    trusted = {name: value >= REQUIRED_ACCURACY for name, value in accuracy.items()}
    for name in ATTRIBUTES:
        if not trusted[name]:
            logger.warning(
                "judge head %s is %.1f%% accurate on renders, below the required %.0f%%; its verdicts are not scored",
                name,
                100 * accuracy[name],
                100 * REQUIRED_ACCURACY,
            )

    stage("vae")(0, settings.vae_renders)
    psnr_db, reconstruction_accuracy = check_vae(pipe, judge, settings.vae_renders, settings.seed)
    stage("vae")(settings.vae_renders, settings.vae_renders)

    samples = generate_and_judge(pipe, judge, prompts, settings, progress=stage("generate"))

    diversity_seed = settings.seed + len(samples)
    diversity = measure_diversity(
        pipe, DIVERSITY_PROMPT, settings.diversity_images, diversity_seed, settings.sampling, stage("diversity")
    )

    settings_json = {**asdict(settings), "sampling": asdict(settings.sampling)}
    return EvalResult(
        model=str(model_name),
        judge=str(judge_name),
        settings=settings_json,
        judge_accuracy=accuracy,
        judge_trusted=trusted,
        groups=score_samples(samples, trusted),
        vae_psnr_db=psnr_db,
        judge_accuracy_on_reconstructions=reconstruction_accuracy,
        diversity=diversity,
        samples=samples,
        seconds=time.monotonic() - started,
    )
