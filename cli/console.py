"""Terminal output for the CLI: logging and progress go to stderr, data to stdout."""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any


class UsageError(Exception):
    """Bad command-line input found by a command itself; ends as a one-line error and exit 2."""


class StdoutClosed(Exception):
    """The reader of stdout went away, as in `dalle generate ... | head -1`."""


def emit(line: str) -> None:
    """Print one line of data on stdout and flush it, so pipelines see each result at once."""
    try:
        print(line, flush=True)
    except BrokenPipeError as exc:
        raise StdoutClosed from exc


def emit_bytes(data: bytes) -> None:
    try:
        sys.stdout.buffer.write(data)
        sys.stdout.buffer.flush()
    except BrokenPipeError as exc:
        raise StdoutClosed from exc


class _LineFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return f"{record.levelname.lower()}: {record.getMessage()}"


def setup_logging(verbose: bool = False, quiet: bool = False) -> None:
    """Send library logs to stderr as `level: message` lines."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_LineFormatter())
    root = logging.getLogger("dalle")
    root.handlers[:] = [handler]
    root.propagate = False
    level = logging.INFO
    if verbose:
        level = logging.DEBUG
    if quiet:
        level = logging.ERROR
    root.setLevel(level)


def stderr_console() -> Any:
    from rich.console import Console

    return Console(stderr=True, no_color="NO_COLOR" in os.environ)


@contextmanager
def progress_bar(description: str, total: int, enabled: bool = True) -> Iterator[Any]:
    """Yield `update(done, **fields)`; draws a rich bar on stderr when it is a terminal.

    When stderr is not a terminal (a log file, CI), nothing is drawn: the
    caller's log lines carry the progress instead.
    """
    console = stderr_console()
    quiet = logging.getLogger("dalle").level > logging.INFO  # -q sets the level to error
    if not enabled or quiet or not console.is_terminal:
        yield lambda done, **fields: None
        return

    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    columns = [
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[info]}"),
        TimeElapsedColumn(),
        TextColumn("eta"),
        TimeRemainingColumn(),
    ]
    with Progress(*columns, console=console, transient=False) as progress:
        task = progress.add_task(description, total=total, info="")

        def update(done: int, **fields: Any) -> None:
            info = " ".join(f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}" for k, v in fields.items())
            progress.update(task, completed=done, info=info)

        yield update
