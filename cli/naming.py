"""Output file names: `{index:05d}-{seed}-{slug}.png`, never overwriting an existing file."""

from __future__ import annotations

import hashlib
import re
import unicodedata
from pathlib import Path

MAX_SLUG_BYTES = 60
_INDEX_RE = re.compile(r"^(\d{5,})-")
# Names that Windows reserves in any folder; a slug must not be one of them.
_RESERVED = {"con", "prn", "aux", "nul", *(f"com{i}" for i in range(10)), *(f"lpt{i}" for i in range(10))}


def slugify(prompt: str) -> str:
    """Short lowercase ASCII form of a prompt, safe as part of a file name on any OS.

    Accented letters lose their accents; when nothing ASCII remains (a Chinese
    prompt, say) the slug is a short hash of the prompt.
    """
    ascii_text = unicodedata.normalize("NFKD", prompt).encode("ascii", "ignore").decode("ascii").lower()
    slug = re.sub(r"[^a-z0-9]+", "-", ascii_text).strip("-")
    if len(slug) > MAX_SLUG_BYTES:
        slug = slug[:MAX_SLUG_BYTES].rstrip("-")
    if not slug:
        slug = "p" + hashlib.sha256(prompt.encode("utf-8")).hexdigest()[:10]
    if slug in _RESERVED:
        slug = f"{slug}-"[:MAX_SLUG_BYTES]
    return slug


def next_index(folder: Path) -> int:
    """Return one past the largest index among the `NNNNN-*.png` files in `folder`, or 0."""
    largest = -1
    if folder.is_dir():
        for path in folder.iterdir():
            match = _INDEX_RE.match(path.name)
            if match:
                largest = max(largest, int(match.group(1)))
    return largest + 1


def output_name(index: int, seed: int, prompt: str) -> str:
    return f"{index:05d}-{seed}-{slugify(prompt)}.png"
