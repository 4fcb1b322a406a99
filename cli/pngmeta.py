"""Generation settings stored inside each PNG, and read back by `dalle info` and `--from`.

Two chunks are written:
- `parameters`: the AUTOMATIC1111 text format (prompt on the first line, then
  `Key: value` pairs), which image viewers and web UIs already display;
- `dalle`: an iTXt chunk with the full settings as JSON, UTF-8 safe.

A `--grid` contact sheet contains the `parameters` text of its first image and a
`dalle-grid` iTXt chunk that lists the full settings of every image on it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PIL import Image, PngImagePlugin

METADATA_KEY = "dalle"
GRID_METADATA_KEY = "dalle-grid"
METADATA_VERSION = 1


@dataclass(frozen=True)
class ImageRecord:
    """Everything needed to regenerate one image."""

    prompt: str
    seed: int
    temperature: float
    top_k: int | None
    top_p: float | None
    guidance_scale: float
    candidates: int  # samples drawn per image; the best by PMI score was kept
    model_sha256: str
    model_name: str
    image_size: int
    image_tokens: int
    tool_version: str

    def to_json_dict(self) -> dict[str, Any]:
        return {
            "metadata_version": METADATA_VERSION,
            "prompt": self.prompt,
            "seed": self.seed,
            "temperature": self.temperature,
            "top_k": self.top_k,
            "top_p": self.top_p,
            "guidance_scale": self.guidance_scale,
            "candidates": self.candidates,
            "model_sha256": self.model_sha256,
            "model_name": self.model_name,
            "image_size": self.image_size,
            "image_tokens": self.image_tokens,
            "tool_version": self.tool_version,
        }

    @classmethod
    def from_json_dict(cls, data: dict[str, Any]) -> ImageRecord:
        return cls(
            prompt=str(data["prompt"]),
            seed=int(data["seed"]),
            temperature=float(data["temperature"]),
            top_k=None if data["top_k"] is None else int(data["top_k"]),
            top_p=None if data["top_p"] is None else float(data["top_p"]),
            guidance_scale=float(data["guidance_scale"]),
            candidates=int(data.get("candidates", 1)),
            model_sha256=str(data["model_sha256"]),
            model_name=str(data["model_name"]),
            image_size=int(data["image_size"]),
            image_tokens=int(data["image_tokens"]),
            tool_version=str(data["tool_version"]),
        )

    def a1111_parameters(self) -> str:
        """Format the settings as AUTOMATIC1111 `parameters` text."""
        pairs = [
            ("Steps", self.image_tokens),
            ("Sampler", "dalle autoregressive"),
            ("CFG scale", self.guidance_scale),
            ("Seed", self.seed),
            ("Size", f"{self.image_size}x{self.image_size}"),
            ("Model hash", self.model_sha256[:10]),
            ("Model", self.model_name),
            ("Temperature", self.temperature),
            ("Top K", self.top_k if self.top_k is not None else "off"),
            ("Top P", self.top_p if self.top_p is not None else "off"),
            ("Candidates", self.candidates),
            ("Version", f"dalle {self.tool_version}"),
        ]
        return self.prompt + "\n" + ", ".join(f"{key}: {value}" for key, value in pairs)


def png_info(record: ImageRecord) -> PngImagePlugin.PngInfo:
    info = PngImagePlugin.PngInfo()
    # Pillow writes a non-Latin-1 value as iTXt on its own, so CJK prompts stay intact.
    info.add_text("parameters", record.a1111_parameters())
    info.add_itxt(METADATA_KEY, json.dumps(record.to_json_dict(), ensure_ascii=False, sort_keys=True))
    return info


def save_png(image: Image.Image, target: Any, record: ImageRecord) -> None:
    """Save `image` as PNG to a path or binary stream, with the record in its metadata."""
    image.save(target, format="PNG", pnginfo=png_info(record))


def save_grid_png(sheet: Image.Image, target: Any, records: list[ImageRecord], columns: int) -> None:
    """Save a contact sheet whose images, row by row, were made with `records`."""
    info = PngImagePlugin.PngInfo()
    grid_pairs = f"Grid images: {len(records)}, Grid columns: {columns}"
    info.add_text("parameters", f"{records[0].a1111_parameters()}, {grid_pairs}")
    payload = {
        "metadata_version": METADATA_VERSION,
        "columns": columns,
        "images": [record.to_json_dict() for record in records],
    }
    info.add_itxt(GRID_METADATA_KEY, json.dumps(payload, ensure_ascii=False, sort_keys=True))
    sheet.save(target, format="PNG", pnginfo=info)


class MetadataError(Exception):
    """An image has no readable dalle metadata."""


def _describe(exc: Exception) -> str:
    """Describe why metadata failed to parse, in words a user can act on."""
    if isinstance(exc, KeyError):
        return f"missing field {exc.args[0]!r}"
    if isinstance(exc, json.JSONDecodeError):
        return f"not JSON: {exc.msg}"
    return f"invalid value: {exc}"


def _read_text_chunks(path: Path) -> dict[str, str]:
    try:
        with Image.open(path) as image:
            image.load()
            return dict(getattr(image, "text", {}))
    except FileNotFoundError as exc:
        raise MetadataError(f"image not found: {path}; check the path") from exc
    except OSError as exc:
        raise MetadataError(f"cannot read image {path} ({exc}); pass a PNG written by dalle generate") from exc


def read_metadata(path: Path) -> tuple[ImageRecord, str | None]:
    """Return the record and the `parameters` text stored in one image written by dalle."""
    return _single_image_metadata(path, _read_text_chunks(path))


def _single_image_metadata(path: Path, text: dict[str, str]) -> tuple[ImageRecord, str | None]:
    if METADATA_KEY not in text:
        if GRID_METADATA_KEY in text:
            raise MetadataError(
                f"{path} is a --grid contact sheet, not one image; pass one of the images written with it"
            )
        raise MetadataError(f"{path} has no dalle metadata; pass a PNG written by dalle generate")
    try:
        record = ImageRecord.from_json_dict(json.loads(text[METADATA_KEY]))
    except (KeyError, TypeError, ValueError) as exc:
        raise MetadataError(
            f"{path} has damaged dalle metadata ({_describe(exc)}); generate the image again from its prompt"
        ) from exc
    return record, text.get("parameters")


def read_all_metadata(path: Path) -> list[tuple[ImageRecord, str | None, int | None]]:
    """Return (record, `parameters` text, grid index) for every image in a PNG written by dalle.

    A single image gives one entry, with grid index None. A contact sheet gives one entry per
    image on it, row by row, with the `parameters` text that image has as a single file.
    """
    text = _read_text_chunks(path)
    if GRID_METADATA_KEY not in text:
        record, parameters = _single_image_metadata(path, text)
        return [(record, parameters, None)]
    try:
        payload = json.loads(text[GRID_METADATA_KEY])
        records = [ImageRecord.from_json_dict(item) for item in payload["images"]]
    except (KeyError, TypeError, ValueError) as exc:
        raise MetadataError(
            f"{path} has damaged dalle grid metadata ({_describe(exc)}); read the single images written with it"
        ) from exc
    if not records:
        raise MetadataError(f"{path} has damaged dalle grid metadata (no images listed); read the single images")
    return [(record, record.a1111_parameters(), index) for index, record in enumerate(records)]
