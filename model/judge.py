"""The judge: a small CNN that reads toy-world attributes back from a picture.

`dalle eval` uses it to score generated images. It has one classification
head per attribute and learns only from toy-world renders with their
ground-truth labels (see judge_training.py), never from generated images.

A judge file is safetensors: float16 or float32 tensors plus string metadata
`format`, `format_version`, `dtype`, `judge_config` (JSON), `labels` (the
label names of every head, JSON) and `training` (JSON facts about the run).
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from PIL import Image
from torch import nn

from .checkpoint import DTYPES
from .config import _JSONConfig, _require
from .errors import CheckpointError, ConfigError
from .files import write_atomic
from .toyworld import BACKGROUNDS, COLOURS, OUTFITS, POSITIONS, SIZES, SUBJECTS

logger = logging.getLogger(__name__)

FORMAT = "dalle-judge"
FORMAT_VERSION = 1
DEFAULT_JUDGE_NAME = "judge.safetensors"

# Label names of each head, in the order of the head's outputs.
HEADS: dict[str, tuple[str, ...]] = {
    "subject": SUBJECTS,
    "colour": COLOURS,
    "outfit": OUTFITS,
    "background": BACKGROUNDS,
    "position": POSITIONS,
    "size": SIZES,
}
ATTRIBUTES: tuple[str, ...] = tuple(HEADS)

# A head's verdicts on generated images count only when it is at least this
# accurate on fresh renders.
REQUIRED_ACCURACY = 0.97


@dataclass
class JudgeConfig(_JSONConfig):
    """Layout of the judge network.

    A stride-2 stem halves the image, then every stage (3x3 convolution, batch
    norm, ReLU, 2x2 max pool) halves it again. The last feature map is
    flattened rather than pooled, so the network keeps where the subject is.
    """

    image_size: int = 64
    stem_width: int = 32
    widths: tuple[int, ...] = (64, 128, 128)
    hidden: int = 256

    def __post_init__(self) -> None:
        self.widths = tuple(self.widths)
        _require(len(self.widths) >= 1, "widths", self.widths, "needs at least one stage", "add one")
        for name in ("image_size", "stem_width", "hidden"):
            value = getattr(self, name)
            _require(isinstance(value, int) and value > 0, name, value, "must be a positive integer", "fix it")
        _require(all(w > 0 for w in self.widths), "widths", self.widths, "must be positive", "fix the widths")
        factor = 2 ** (len(self.widths) + 1)
        _require(
            self.image_size % factor == 0,
            "image_size",
            self.image_size,
            f"must be a multiple of {factor} (2 ** (stages + 1))",
            "choose another size or fewer stages",
        )

    @property
    def feature_side(self) -> int:
        """Side of the last feature map, which the trunk flattens."""
        return self.image_size // 2 ** (len(self.widths) + 1)


class Judge(nn.Module):
    """Classifier with one linear head per attribute over a shared convolutional trunk."""

    def __init__(self, config: JudgeConfig) -> None:
        super().__init__()
        self.config = config
        layers: list[nn.Module] = [
            nn.Conv2d(3, config.stem_width, 4, stride=2, padding=1, bias=False),
            nn.BatchNorm2d(config.stem_width),
            nn.ReLU(),
        ]
        channels = config.stem_width
        for width in config.widths:
            layers += [
                nn.Conv2d(channels, width, 3, padding=1, bias=False),
                nn.BatchNorm2d(width),
                nn.ReLU(),
                nn.MaxPool2d(2),
            ]
            channels = width
        self.features = nn.Sequential(*layers)
        flat = channels * config.feature_side**2
        self.trunk = nn.Sequential(nn.Flatten(), nn.Linear(flat, config.hidden), nn.ReLU())
        self.heads = nn.ModuleDict({name: nn.Linear(config.hidden, len(labels)) for name, labels in HEADS.items()})

    def forward(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        """Map float images (B, 3, S, S) in [-1, 1] to logits (B, classes) per attribute."""
        hidden = self.trunk(self.features(images))
        return {name: head(hidden) for name, head in self.heads.items()}

    @torch.inference_mode()
    def predict(self, images: torch.Tensor, batch_size: int = 256) -> dict[str, torch.Tensor]:
        """Return the predicted class index (B,) per attribute for float images in [-1, 1]."""
        was_training = self.training
        self.eval()
        chunks: dict[str, list[torch.Tensor]] = {name: [] for name in HEADS}
        for start in range(0, images.shape[0], batch_size):
            logits = self(images[start : start + batch_size])
            for name, values in logits.items():
                chunks[name].append(values.argmax(dim=-1))
        self.train(was_training)
        return {name: torch.cat(parts) for name, parts in chunks.items()}


def images_to_tensor(images: list[Image.Image], image_size: int) -> torch.Tensor:
    """Convert PIL images to a float batch (N, 3, S, S) in [-1, 1], resizing any of another size."""
    import numpy as np

    arrays = []
    for image in images:
        image = image.convert("RGB")
        if image.size != (image_size, image_size):
            image = image.resize((image_size, image_size), Image.Resampling.LANCZOS)
        arrays.append(np.asarray(image, dtype=np.uint8))
    batch = torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2)
    return batch.float() / 127.5 - 1.0


def default_judge_path() -> Path:
    """Path of the judge shipped in the dalle.weights package."""
    from importlib.resources import files

    return Path(str(files("dalle.weights").joinpath(DEFAULT_JUDGE_NAME)))


def save_judge(
    path: str | os.PathLike[str], judge: Judge, training: dict[str, Any] | None = None, dtype: str = "float16"
) -> None:
    """Write a judge file atomically, so a crash mid-write leaves any older file intact."""
    from safetensors.torch import save_file

    if dtype not in DTYPES:
        raise ConfigError(f"invalid dtype={dtype!r}: must be one of {sorted(DTYPES)}")
    tensors = {}
    for name, tensor in judge.state_dict().items():
        # Batch-norm step counters are integers and keep their type.
        target = DTYPES[dtype] if tensor.is_floating_point() else tensor.dtype
        tensors[name] = tensor.detach().to("cpu", target).contiguous()
    metadata = {
        "format": FORMAT,
        "format_version": str(FORMAT_VERSION),
        "dtype": dtype,
        "judge_config": judge.config.to_json(),
        "labels": json.dumps(HEADS),
        "training": json.dumps(training or {}, sort_keys=True),
    }
    write_atomic(path, lambda tmp: save_file(tensors, str(tmp), metadata=metadata))
    logger.info("saved judge %s (%d tensors, %s)", path, len(tensors), dtype)


def _read_safetensors(path: Path) -> tuple[dict[str, str], dict[str, torch.Tensor]]:
    from safetensors import SafetensorError, safe_open

    if not path.exists():
        raise CheckpointError(f"judge file not found: {path}; train one with `dalle train judge {path}`")
    if path.is_dir():
        raise CheckpointError(f"judge path {path} is a folder; pass the .safetensors file inside it")
    with open(path, "rb") as handle:
        head = handle.read(8)
    if head.startswith(b"PK\x03\x04") or head[:1] == b"\x80":
        raise CheckpointError(f"{path} is a pickle or torch.save file; dalle loads only .safetensors judge files")
    try:
        with safe_open(str(path), framework="pt", device="cpu") as handle:
            metadata = handle.metadata() or {}
            tensors = {key: handle.get_tensor(key) for key in handle.keys()}  # noqa: SIM118
    except (SafetensorError, OSError, ValueError) as exc:
        raise CheckpointError(f"{path} is not a readable safetensors file ({exc}); train the judge again") from exc
    return metadata, tensors


def load_judge(path: str | os.PathLike[str] | None = None) -> tuple[Judge, dict[str, Any]]:
    """Load and validate a judge file, or the shipped judge when `path` is None.

    Returns the judge in eval mode, in float32 on the CPU, and the `training`
    metadata. Raises CheckpointError on any mismatch between file and code.
    """
    path = default_judge_path() if path is None else Path(path)
    metadata, tensors = _read_safetensors(path)

    if metadata.get("format") != FORMAT:
        raise CheckpointError(
            f"{path} is not a dalle judge file (format={metadata.get('format')!r}); "
            "pass a file written by `dalle train judge`"
        )
    if metadata.get("format_version") != str(FORMAT_VERSION):
        raise CheckpointError(
            f"{path} has judge format version {metadata.get('format_version')}, this dalle reads version "
            f"{FORMAT_VERSION}; train the judge again with `dalle train judge`"
        )
    dtype_name = metadata.get("dtype", "")
    if dtype_name not in DTYPES:
        raise CheckpointError(f"{path} has invalid dtype {dtype_name!r} in its metadata; train the judge again")
    try:
        config = JudgeConfig.from_json(metadata["judge_config"])
        labels = json.loads(metadata["labels"])
        training = json.loads(metadata.get("training", "{}"))
    except (KeyError, ConfigError, TypeError, json.JSONDecodeError) as exc:
        raise CheckpointError(f"{path} has an invalid judge config or labels ({exc}); train the judge again") from exc
    expected_labels = {name: list(values) for name, values in HEADS.items()}
    if labels != expected_labels:
        raise CheckpointError(
            f"{path} was trained on other toy-world labels than this dalle draws; "
            f"train the judge again with `dalle train judge {path}`"
        )

    judge = Judge(config)
    expected = judge.state_dict()
    missing = sorted(set(expected) - set(tensors))
    unexpected = sorted(set(tensors) - set(expected))
    if missing or unexpected:
        raise CheckpointError(
            f"{path}: judge tensors do not match its config (missing {missing[:5]}, unexpected {unexpected[:5]}); "
            "train the judge again"
        )
    for name, tensor in tensors.items():
        if tensor.shape != expected[name].shape:
            raise CheckpointError(
                f"{path}: tensor {name} has shape {tuple(tensor.shape)}, config expects "
                f"{tuple(expected[name].shape)}; train the judge again"
            )
        if tensor.is_floating_point() and tensor.dtype != DTYPES[dtype_name]:
            raise CheckpointError(
                f"{path}: tensor {name} is {tensor.dtype}, metadata says {dtype_name}; the file is inconsistent, "
                "so train the judge again"
            )
    state = {name: t.float() if t.is_floating_point() else t for name, t in tensors.items()}
    judge.load_state_dict(state, strict=True)
    judge.eval()
    return judge, training
