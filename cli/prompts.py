"""Prompt sources for `dalle generate`: arguments, prompt files and standard input.

A prompt file contains one prompt per line. Blank lines and lines starting with
`#` are skipped. A line may end with per-line overrides in the AUTOMATIC1111
style, after a tab or after " --":

    orange dinosaur in a suit --seed 5 -n 2
    一个穿着西服的橙色恐龙<TAB>--guidance-scale 4

Overrides are parsed strictly: an unknown or invalid one is an error that
names the file and line.
"""

from __future__ import annotations

import codecs
import io
import logging
import re
import shlex
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from .console import UsageError

logger = logging.getLogger("dalle.cli")


class PromptSourceError(UsageError):
    """A prompt or override is invalid; the message names the source and line."""


@dataclass(frozen=True)
class PromptLine:
    text: str
    source: str  # "argument 2", "prompts.txt:14" or "<stdin>:3"
    overrides: dict[str, Any] = field(default_factory=dict)


# Override flag -> (setting name, parser, rule checked after parsing, rule text).
def _positive_int(value: str) -> int:
    number = int(value)
    if number < 1:
        raise ValueError("must be >= 1")
    return number


def _non_negative_int(value: str) -> int:
    number = int(value)
    if number < 0:
        raise ValueError("must be >= 0")
    return number


def _non_negative_float(value: str) -> float:
    number = float(value)
    if not number >= 0:
        raise ValueError("must be >= 0")
    return number


def _probability(value: str) -> float:
    number = float(value)
    if not 0 < number <= 1:
        raise ValueError("must be in (0, 1]")
    return number


OVERRIDES = {
    "--seed": ("seed", _non_negative_int),
    "-n": ("n", _positive_int),
    "--num-images": ("n", _positive_int),
    "--guidance-scale": ("guidance_scale", _non_negative_float),
    "--temperature": ("temperature", _non_negative_float),
    "--top-k": ("top_k", _positive_int),
    "--top-p": ("top_p", _probability),
    "--candidates": ("candidates", _positive_int),
}


def parse_overrides(text: str, source: str) -> dict[str, Any]:
    """Parse `--flag value` pairs; raise PromptSourceError naming `source` for anything else."""
    try:
        tokens = shlex.split(text)
    except ValueError as exc:
        raise PromptSourceError(f"{source}: cannot parse overrides {text!r} ({exc}); quote values properly") from exc
    overrides: dict[str, Any] = {}
    i = 0
    while i < len(tokens):
        flag = tokens[i]
        if "=" in flag and flag.startswith("-"):
            flag, value = flag.split("=", 1)
            i += 1
        else:
            if i + 1 >= len(tokens):
                raise PromptSourceError(f"{source}: override {flag!r} has no value; write it as {flag} VALUE")
            value = tokens[i + 1]
            i += 2
        if flag not in OVERRIDES:
            known = ", ".join(sorted(OVERRIDES))
            raise PromptSourceError(f"{source}: unknown override {flag!r}; known overrides are {known}")
        name, parse = OVERRIDES[flag]
        try:
            overrides[name] = parse(value)
        except ValueError as exc:
            raise PromptSourceError(f"{source}: invalid value {value!r} for {flag} ({exc})") from exc
    return overrides


def parse_line(line: str, source: str) -> PromptLine | None:
    """Turn one prompt-file line into a PromptLine, or None for a blank or comment line."""
    line = line.rstrip("\r\n")
    if not line.strip() or line.lstrip().startswith("#"):
        return None
    text, overrides = line, ""
    if "\t" in line:
        text, overrides = line.split("\t", 1)
    elif " --" in line:
        cut = line.index(" --")
        text, overrides = line[:cut], line[cut + 1 :]
    text = text.strip()
    if not text:
        raise PromptSourceError(f"{source}: the prompt is empty; write the prompt before the overrides")
    if not overrides and re.search(r"(?:^|\s)-n\s+\d+\s*$", text):
        # " --" starts the overrides, so a line like "red cat -n 2" keeps "-n 2" in its prompt.
        logger.warning(
            "%s: '-n' is read as part of the prompt, because settings start after a tab or ' --'; "
            "put a tab before '-n' to set the count",
            source,
        )
    return PromptLine(text=text, source=source, overrides=parse_overrides(overrides, source) if overrides else {})


def _decode_stream(raw: IO[bytes]) -> Iterator[str]:
    """Yield text lines from bytes: UTF-8 with or without BOM, or UTF-16 with BOM."""
    head = raw.read(4) if hasattr(raw, "read") else b""
    encoding = "utf-16" if head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)) else "utf-8-sig"
    stream = io.TextIOWrapper(io.BufferedReader(_Prepend(head, raw)), encoding=encoding, newline=None)
    yield from stream


class _Prepend(io.RawIOBase):
    """A readable byte stream that returns `head` before the rest of `raw`."""

    def __init__(self, head: bytes, raw: IO[bytes]) -> None:
        self.head = head
        self.raw = raw

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        if self.head:
            n = min(len(buffer), len(self.head))
            buffer[:n] = self.head[:n]
            self.head = self.head[n:]
            return n
        data = self.raw.read1(len(buffer)) if hasattr(self.raw, "read1") else self.raw.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)


def iter_file(path: Path | None, name: str) -> Iterator[PromptLine]:
    """Yield the prompts of a file (or of stdin when `path` is None), lazily, line by line."""
    try:
        raw: IO[bytes] = sys.stdin.buffer if path is None else open(path, "rb")  # noqa: SIM115
    except OSError as exc:
        raise PromptSourceError(f"cannot open prompt file {path} ({exc.strerror}); check the path") from exc
    try:
        for number, line in enumerate(_decode_stream(raw), start=1):
            try:
                parsed = parse_line(line, f"{name}:{number}")
            except UnicodeDecodeError as exc:
                raise PromptSourceError(f"{name}:{number}: not valid UTF-8 or UTF-16 text; re-save the file") from exc
            if parsed is not None:
                yield parsed
    except UnicodeDecodeError as exc:
        raise PromptSourceError(f"{name}: not valid UTF-8 text ({exc.reason}); save the file as UTF-8") from exc
    finally:
        if path is not None:
            raw.close()
