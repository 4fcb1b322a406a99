"""`dalle generate`: prompts in, PNG files (or JSON lines, or one PNG on stdout) out.

The work runs as a stream: prompts are read lazily, grouped into sampling
batches of `--batch-size` images (across prompts), and every image is written
and reported as soon as its batch is done. The model loads once per run.
"""

from __future__ import annotations

import io
import json
import logging
import os
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import typer

from .console import StdoutClosed, UsageError, emit, emit_bytes, progress_bar, setup_logging
from .options import SAMPLING_FLAGS, Device, GuidanceScale, Temperature, TopK, TopP
from .prompts import PromptLine, iter_file

logger = logging.getLogger("dalle.cli")

EXAMPLES = """Examples:

  dalle generate "orange dinosaur in a suit"

  dalle generate "一个穿着西服的橙色恐龙" -n 8 --seed 0 --out-dir outputs

  dalle generate --prompts prompts.txt --batch-size 16 --json | jq -r .path

  printf 'red cat\\nblue robot\\n' | dalle generate - -n 2

  dalle generate "white bear" -n 1 -o - > bear.png

  dalle generate --from outputs/00000-0-orange-dinosaur-in-a-suit.png
"""


@dataclass(frozen=True)
class Job:
    """One image to draw."""

    prompt: str
    seed: int
    temperature: float
    top_k: int | None
    top_p: float | None
    guidance_scale: float
    candidates: int
    group: int  # which prompt line this image belongs to, for --grid
    group_size: int
    last_in_group: bool


def _ensure_out_dir(out_dir: Path) -> None:
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UsageError(f"cannot create output folder {out_dir} ({exc.strerror}); pass a writable --out-dir") from exc
    if not os.access(out_dir, os.W_OK | os.X_OK):
        raise UsageError(f"output folder {out_dir} is not writable; pass a writable --out-dir")


def _stdin_lines() -> Iterator[PromptLine]:
    if sys.stdin is None or sys.stdin.isatty():
        raise UsageError(
            "prompt '-' reads standard input, but it is a terminal; pipe prompts in or pass them as arguments"
        )
    return iter_file(None, "<stdin>")


def _prompt_lines(prompts: list[str], prompts_file: Path | None) -> tuple[Iterator[PromptLine], int | None]:
    """Return the prompt stream and its length when known in advance (None for stdin)."""
    if prompts_file is not None and prompts:
        raise UsageError("pass prompts as arguments or with --prompts, not both")
    if (prompts_file is not None and str(prompts_file) == "-") or prompts == ["-"]:
        return _stdin_lines(), None
    if prompts_file is not None:
        # A regular file is checked whole first, so a bad line stops the run before any image.
        lines = list(iter_file(prompts_file, str(prompts_file)))
        if not lines:
            raise UsageError(f"prompt file {prompts_file} contains no prompts; write one prompt per line")
        return iter(lines), len(lines)
    if "-" in prompts:
        raise UsageError("prompt '-' (standard input) cannot be mixed with other prompts; pass it alone")
    lines = []
    for i, text in enumerate(prompts, start=1):
        if not text.strip():
            raise UsageError(f"prompt {i} is empty; pass some text, for example 'orange dinosaur in a suit'")
        lines.append(PromptLine(text=text, source=f"argument {i}"))
    return iter(lines), len(lines)


def _jobs(lines: Iterator[PromptLine], defaults: dict[str, Any], seed_drawn: bool = False) -> Iterator[Job]:
    """Expand prompt lines into jobs; image i of a line uses seed `seed + i`.

    With `seed_drawn`, the default seed was drawn at random: it is logged once,
    when the first line that does not set its own --seed uses it.
    """
    for group, line in enumerate(lines):
        settings = {**defaults, **line.overrides}
        if not line.text.strip():
            raise UsageError(f"{line.source}: the prompt is empty; write some text")
        if seed_drawn and "seed" not in line.overrides:
            logger.info("seed %d (drawn at random; pass --seed %d to repeat)", defaults["seed"], defaults["seed"])
            seed_drawn = False
        for i in range(settings["n"]):
            yield Job(
                prompt=line.text,
                seed=settings["seed"] + i,
                temperature=settings["temperature"],
                top_k=settings["top_k"],
                top_p=settings["top_p"],
                guidance_scale=settings["guidance_scale"],
                candidates=settings["candidates"],
                group=group,
                group_size=settings["n"],
                last_in_group=i == settings["n"] - 1,
            )


def _batches(jobs: Iterator[Job], batch_size: int, streaming: bool = False) -> Iterator[list[Job]]:
    """Group consecutive jobs with equal sampling settings into batches of at most batch_size.

    With `streaming`, a batch also ends with each prompt line, because reading the next
    line may block until the writer of stdin sends it.
    """
    batch: list[Job] = []
    for job in jobs:
        if batch and _settings_key(batch[0]) != _settings_key(job):
            yield batch
            batch = []
        batch.append(job)
        if len(batch) == batch_size or (streaming and job.last_in_group):
            yield batch
            batch = []
    if batch:
        yield batch


def _settings_key(job: Job) -> tuple[Any, ...]:
    return (job.temperature, job.top_k, job.top_p, job.guidance_scale, job.candidates)


def generate(
    context: typer.Context,
    prompts: Annotated[
        list[str] | None,
        typer.Argument(
            help="Prompts; '-' reads one prompt per line from standard input.", show_default=False, metavar="PROMPT"
        ),
    ] = None,
    prompts_file: Annotated[
        Path | None, typer.Option("--prompts", help="File with one prompt per line; '-' for standard input.")
    ] = None,
    n: Annotated[int, typer.Option("-n", "--num-images", help="Images per prompt.", min=1)] = 4,
    seed: Annotated[
        int | None,
        typer.Option(help="Seed of a prompt's first image; image i uses seed + i. Random when omitted.", min=0),
    ] = None,
    model: Annotated[Path | None, typer.Option(help="Checkpoint (.safetensors). Default: the shipped model.")] = None,
    out_dir: Annotated[Path, typer.Option(help="Folder for the PNG files.")] = Path("outputs"),
    output: Annotated[
        str | None, typer.Option("--output", "-o", help="'-' writes the single PNG to stdout instead of a file.")
    ] = None,
    temperature: Temperature = 0.7,
    top_k: TopK = None,
    top_p: TopP = None,
    guidance_scale: GuidanceScale = 2.0,
    batch_size: Annotated[int, typer.Option(help="Images sampled together, across prompts.", min=1)] = 8,
    candidates: Annotated[
        int,
        typer.Option(help="Sample this many per image and keep the one the prompt explains best (PMI score).", min=1),
    ] = 1,
    grid: Annotated[bool, typer.Option("--grid", help="Also write one contact sheet per prompt.")] = False,
    json_lines: Annotated[
        bool, typer.Option("--json", help="Print one JSON object per image instead of its path.")
    ] = False,
    from_image: Annotated[
        Path | None,
        typer.Option(
            "--from",
            help="Regenerate the image described by this PNG's dalle metadata. Sampling options given "
            "with it (--temperature, --top-k, --top-p, --guidance-scale, --candidates) replace the stored ones.",
        ),
    ] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Print nothing on stderr but errors.")] = False,
    device: Device = "cpu",
) -> None:
    """Generate PNG images for prompts and print each written path on stdout."""
    if quiet:
        setup_logging(quiet=True)
    prompts = prompts or []
    if output is not None and output != "-":
        raise UsageError(f"invalid --output {output!r}: only '-' (stdout) is supported; use --out-dir for files")

    # 1. Settings and prompt sources, checked before the model loads.
    from dalle.model import SamplingSettings, TextToImage
    from dalle.model.files import sha256_file

    from .pngmeta import MetadataError, read_metadata

    SamplingSettings(temperature, top_k, top_p, guidance_scale).validate(None, names=SAMPLING_FLAGS)
    sampling_options = {
        "temperature": temperature,
        "top_k": top_k,
        "top_p": top_p,
        "guidance_scale": guidance_scale,
        "candidates": candidates,
    }
    if from_image is not None:
        if prompts or prompts_file is not None:
            raise UsageError("--from regenerates one image from its metadata; pass no prompts with it")
        typed = _options_given(context, "n", "seed")
        if typed:
            raise UsageError(
                f"--from takes the seed and image count from {from_image}; drop {' and '.join(typed)}, "
                "or pass the prompt instead of --from"
            )
        try:
            record, _ = read_metadata(from_image)
        except MetadataError as exc:
            raise UsageError(str(exc)) from exc
        lines: Iterator[PromptLine] = iter([PromptLine(text=record.prompt, source=str(from_image))])
        known_count: int | None = 1
        defaults: dict[str, Any] = {
            "n": 1,
            "seed": record.seed,
            "temperature": record.temperature,
            "top_k": record.top_k,
            "top_p": record.top_p,
            "guidance_scale": record.guidance_scale,
            "candidates": record.candidates,
        }
        # Typed sampling options replace the stored ones, so the same prompt and seed can be drawn another way.
        for name, value in sampling_options.items():
            if _options_given(context, name):
                defaults[name] = value
    else:
        if not prompts and prompts_file is None:
            raise UsageError("no prompt given; pass a prompt, '-' for standard input, or --prompts FILE")
        lines, known_count = _prompt_lines(prompts, prompts_file)
        defaults = {"n": n, "seed": seed, **sampling_options}
    to_stdout = output == "-"
    if to_stdout and grid:
        raise UsageError("--grid writes a contact sheet file beside the images; drop --grid or -o -")
    if to_stdout and (known_count is None or known_count * defaults["n"] != 1):
        raise UsageError("-o - writes a single PNG to stdout; ask for exactly one image (one prompt and -n 1)")
    if not to_stdout:
        _ensure_out_dir(out_dir)

    # 2. Load the model once; draw a seed when none was given (reported when a line uses it).
    pipe = TextToImage.from_pretrained(model, device=device)
    model_path = Path(pipe.checkpoint.path or "")
    model_sha = sha256_file(model_path)
    if from_image is not None and record.model_sha256 != model_sha:
        raise UsageError(
            f"{from_image} was made with model sha256 {record.model_sha256[:12]}, but {model_path} has "
            f"{model_sha[:12]}; pass the model it was made with via --model"
        )
    checked = SamplingSettings(
        defaults["temperature"], defaults["top_k"], defaults["top_p"], defaults["guidance_scale"]
    )
    checked.validate(pipe.transformer.config.image_vocab_size, names=SAMPLING_FLAGS)
    seed_drawn = defaults["seed"] is None
    if seed_drawn:
        import secrets

        defaults["seed"] = secrets.randbelow(2**31)

    # 3. Stream: sample batch by batch, write and report each image at once.
    writer = _Writer(pipe, model_path, model_sha, out_dir, to_stdout, json_lines, grid)
    image_len = pipe.transformer.config.image_len
    total = None if known_count is None else known_count * defaults["n"] * image_len
    done_tokens = 0
    with progress_bar("sampling", total or 0, enabled=not quiet and total is not None) as update:
        for batch in _batches(_jobs(lines, defaults, seed_drawn), batch_size, streaming=known_count is None):
            first = batch[0]
            settings = SamplingSettings(first.temperature, first.top_k, first.top_p, first.guidance_scale)
            images = pipe.generate_with_seeds(
                [job.prompt for job in batch],
                [job.seed for job in batch],
                settings,
                batch_size=batch_size,
                progress=lambda done, _total, base=done_tokens, m=first.candidates: update(base + done // m),
                candidates=first.candidates,
            )
            done_tokens += len(batch) * image_len
            for job, image in zip(batch, images, strict=True):
                writer.write(job, image)
    if writer.count == 0:
        logger.warning("no prompts were read from standard input, so no images were written")


class _Writer:
    """Writes images (never overwriting), reports them on stdout, and assembles --grid sheets."""

    def __init__(
        self, pipe: Any, model_path: Path, model_sha: str, out_dir: Path, to_stdout: bool, json_lines: bool, grid: bool
    ) -> None:
        from .naming import next_index

        self.pipe = pipe
        self.model_path = model_path
        self.model_sha = model_sha
        self.out_dir = out_dir
        self.to_stdout = to_stdout
        self.json_lines = json_lines
        self.grid = grid
        self.index = 0 if to_stdout else next_index(out_dir)
        # group -> (image, record) pairs waiting for their contact sheet
        self.pending: dict[int, list[tuple[Any, Any]]] = {}
        self.count = 0

    def _record(self, job: Job) -> Any:
        from importlib.metadata import PackageNotFoundError, version

        from .pngmeta import ImageRecord

        try:
            tool_version = version("dalle")
        except PackageNotFoundError:
            tool_version = "unknown"
        return ImageRecord(
            prompt=job.prompt,
            seed=job.seed,
            temperature=job.temperature,
            top_k=job.top_k,
            top_p=job.top_p,
            guidance_scale=job.guidance_scale,
            candidates=job.candidates,
            model_sha256=self.model_sha,
            model_name=self.model_path.stem,
            image_size=self.pipe.image_size,
            image_tokens=self.pipe.transformer.config.image_len,
            tool_version=tool_version,
        )

    def _claim(self, stem_for: Any, writer: Any) -> Path:
        """Write through a temporary file to the first free `NNNNN-...` name."""
        from dalle.model.files import create_exclusive

        while True:
            path = self.out_dir / stem_for(self.index)
            self.index += 1
            if create_exclusive(path, writer):
                return path

    def write(self, job: Job, image: Any) -> None:
        from .naming import output_name
        from .pngmeta import save_png

        record = self._record(job)
        self.count += 1
        if self.to_stdout:
            buffer = io.BytesIO()
            save_png(image, buffer, record)
            emit_bytes(buffer.getvalue())
            return
        path = self._claim(lambda i: output_name(i, job.seed, job.prompt), lambda tmp: save_png(image, tmp, record))
        if self.json_lines:
            line = json.dumps({"path": str(path), **record.to_json_dict()}, ensure_ascii=False)
        else:
            line = str(path)
        try:
            emit(line)
        except StdoutClosed:
            # As in `dalle generate ... | head -1`: the file is complete, but no reader saw its path.
            logger.warning("stdout was closed, so the path of %s was not printed; the file is complete", path)
            raise
        if not sys.stderr.isatty():
            logger.info("wrote %s", path)
        if self.grid:
            self._collect(job, image, record)

    def _collect(self, job: Job, image: Any, record: Any) -> None:
        from dalle.model.train import make_grid

        from .naming import slugify
        from .pngmeta import save_grid_png

        pending = self.pending.setdefault(job.group, [])
        pending.append((image, record))
        if len(pending) < job.group_size:
            return
        del self.pending[job.group]
        images = [image for image, _ in pending]
        records = [record for _, record in pending]
        columns = min(len(images), 8)
        path = self._claim(
            lambda i: f"{i:05d}-grid-{slugify(job.prompt)}.png",
            lambda tmp: save_grid_png(make_grid(images, columns), tmp, records, columns),
        )
        if self.json_lines:
            sheet = {"path": str(path), "grid": True, "prompt": job.prompt, "seeds": [r.seed for r in records]}
            emit(json.dumps(sheet, ensure_ascii=False))
        else:
            emit(str(path))
        if not sys.stderr.isatty():
            logger.info("wrote %s", path)


def _options_given(context: typer.Context, *names: str) -> list[str]:
    """Return the flags, as spelled in the help, of the options among `names` that the user typed."""
    flags = {param.name: param.opts[0] for param in context.command.params}
    typed = []
    for name in names:
        source = context.get_parameter_source(name)
        if source is not None and source.name != "DEFAULT":
            typed.append(flags[name])
    return typed


def info(
    images: Annotated[
        list[Path], typer.Argument(help="PNG files written by dalle generate.", show_default=False, metavar="IMAGE")
    ],
) -> None:
    """Print the generation settings stored in PNG files, one JSON object per image.

    A --grid contact sheet gives one object per image on it, with its `grid_index`.

    A file without readable metadata gets an error line on stderr. The other files are
    still printed, and the exit status is 2.

    Example:  dalle info outputs/*.png | jq -r '.prompt + " " + (.seed|tostring)'
    """
    from .pngmeta import MetadataError, read_all_metadata

    failed = 0
    for path in images:
        try:
            entries = read_all_metadata(path)
        except MetadataError as exc:
            # One bad file in `dalle info outputs/*.png` should not hide the rest.
            print(f"error: {exc}", file=sys.stderr)
            failed += 1
            continue
        for record, parameters, grid_index in entries:
            data: dict[str, Any] = {"path": str(path)}
            if grid_index is not None:
                data["grid_index"] = grid_index
            data.update(record.to_json_dict(), parameters=parameters)
            emit(json.dumps(data, ensure_ascii=False))
    if failed:
        raise typer.Exit(code=2)
