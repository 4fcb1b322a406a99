"""Datasets: image folders with same-stem captions, and pre-encoded codes files.

Folder format (as DALLE-pytorch reads it): `cat.png` beside `cat.txt`, where
each non-empty line of the text file is one caption for the image and training
picks one at random each time. Sub-folders are searched too. Hidden files and
an `attributes.jsonl` file (toy-world ground truth) are skipped.
"""

from __future__ import annotations

import json
import logging
import os
import random
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from .errors import DatasetError
from .files import write_atomic

logger = logging.getLogger(__name__)

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp")
SIDECAR_NAMES = ("attributes.jsonl",)
CODES_FORMAT = "dalle-codes"


@dataclass
class Example:
    image: Path
    captions: list[str]


def scan_folder(folder: str | os.PathLike[str]) -> list[Example]:
    """List image/caption pairs under `folder`, rejecting stray or unpaired files."""
    root = Path(folder)
    if not root.is_dir():
        raise DatasetError(f"dataset folder not found: {root}; pass a folder of images with same-stem .txt captions")
    images: dict[Path, Path] = {}
    texts: dict[Path, Path] = {}
    for path in sorted(root.rglob("*")):
        if path.is_dir() or any(part.startswith(".") for part in path.relative_to(root).parts):
            continue
        if path.name in SIDECAR_NAMES:
            continue
        suffix = path.suffix.lower()
        if suffix in IMAGE_SUFFIXES:
            images[path.with_suffix("")] = path
        elif suffix == ".txt":
            texts[path.with_suffix("")] = path
        else:
            raise DatasetError(
                f"dataset file {path} is neither an image ({', '.join(IMAGE_SUFFIXES)}) nor a .txt caption; "
                "move it out of the dataset folder"
            )
    missing_text = sorted(set(images) - set(texts))
    if missing_text:
        raise DatasetError(f"image {images[missing_text[0]]} has no caption file; add {missing_text[0]}.txt")
    missing_image = sorted(set(texts) - set(images))
    if missing_image:
        raise DatasetError(f"caption {texts[missing_image[0]]} has no image beside it; add the image or remove it")
    if not images:
        raise DatasetError(f"dataset folder {root} has no images; add .png or .jpg files with .txt captions")

    examples = []
    for stem in sorted(images):
        lines = texts[stem].read_text(encoding="utf-8-sig").splitlines()
        captions = [line.strip() for line in lines if line.strip()]
        if not captions:
            raise DatasetError(f"caption file {texts[stem]} is empty; write at least one caption line")
        examples.append(Example(images[stem], captions))
    return examples


def load_image(path: Path, image_size: int) -> tuple[np.ndarray, tuple[int, int]]:
    """Read an image as uint8 (image_size, image_size, 3): centre-cropped to a square, then resized.

    Also returns the size (width, height) the file had, so callers can say what changed.
    """
    try:
        with Image.open(path) as image:
            image = image.convert("RGB")
    except (UnidentifiedImageError, OSError) as exc:
        raise DatasetError(f"cannot read image {path} ({exc}); replace or remove the file") from exc
    original = image.size
    side = min(image.size)
    left, top = (image.width - side) // 2, (image.height - side) // 2
    image = image.crop((left, top, left + side, top + side))
    if image.size != (image_size, image_size):
        image = image.resize((image_size, image_size), Image.Resampling.LANCZOS)
    return np.array(image, dtype=np.uint8), original  # a writable copy, which torch.from_numpy needs


def load_images(
    examples: list[Example], image_size: int, progress: Callable[[int, int], None] | None = None
) -> torch.Tensor:
    """Load every image into one uint8 tensor (N, 3, H, W).

    NOTE: the whole dataset is held in memory, which suits datasets up to a few
    hundred thousand small images.
    """
    out = torch.empty(len(examples), 3, image_size, image_size, dtype=torch.uint8)
    cropped = resized = 0
    first_changed: tuple[Path, tuple[int, int]] | None = None
    for i, example in enumerate(examples):
        array, (width, height) = load_image(example.image, image_size)
        out[i] = torch.from_numpy(array).permute(2, 0, 1)
        cropped += width != height
        resized += min(width, height) != image_size
        if first_changed is None and (width, height) != (image_size, image_size):
            first_changed = (example.image, (width, height))
        if progress is not None and (i + 1) % 256 == 0:
            progress(i + 1, len(examples))
    if first_changed is not None:
        path, (width, height) = first_changed
        logger.info(
            "images of another size than %d x %d: %d of %d centre-cropped to a square, %d of %d resized; "
            "the first is %s (%d x %d)",
            image_size,
            image_size,
            cropped,
            len(examples),
            resized,
            len(examples),
            path,
            width,
            height,
        )
    return out


def to_model_range(images: torch.Tensor) -> torch.Tensor:
    """uint8 (B, 3, H, W) to float in [-1, 1]."""
    return images.float() / 127.5 - 1.0


def to_pil(images: torch.Tensor) -> list[Image.Image]:
    """Float (B, 3, H, W) in [-1, 1] to PIL images."""
    array = ((images.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()
    return [Image.fromarray(a) for a in array]


@dataclass
class CodesFile:
    codes: torch.Tensor  # (N, h, w) int64
    captions: list[list[str]]
    vae_fingerprint: str


def save_codes(path: str | os.PathLike[str], codes: torch.Tensor, captions: list[list[str]], fingerprint: str) -> None:
    from safetensors.torch import save_file

    metadata = {
        "format": CODES_FORMAT,
        "captions": json.dumps(captions, ensure_ascii=False),
        "vae_fingerprint": fingerprint,
    }
    tensors = {"codes": codes.to(torch.int32).contiguous()}
    write_atomic(path, lambda tmp: save_file(tensors, str(tmp), metadata=metadata))


def load_codes(path: str | os.PathLike[str]) -> CodesFile:
    from safetensors import SafetensorError, safe_open

    path = Path(path)
    if not path.is_file():
        raise DatasetError(f"codes file not found: {path}; create it with `dalle encode DATA -o {path}`")
    try:
        with safe_open(str(path), framework="pt", device="cpu") as handle:
            metadata = handle.metadata() or {}
            codes = handle.get_tensor("codes").long()
    except (SafetensorError, OSError, ValueError) as exc:
        raise DatasetError(f"{path} is not a readable codes file ({exc}); run `dalle encode` again") from exc
    if metadata.get("format") != CODES_FORMAT:
        raise DatasetError(f"{path} is not a dalle codes file; create one with `dalle encode`")
    captions = json.loads(metadata["captions"])
    if len(captions) != codes.shape[0]:
        raise DatasetError(f"{path} has {codes.shape[0]} code grids but {len(captions)} captions; encode it again")
    return CodesFile(codes=codes, captions=captions, vae_fingerprint=metadata.get("vae_fingerprint", ""))


def pick_captions(captions: list[list[str]], indices: list[int], rng: random.Random) -> list[str]:
    return [rng.choice(captions[i]) for i in indices]
