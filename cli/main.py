"""The `dalle` command line.

Heavy modules (torch, transformers) are imported inside the commands, so
`dalle --help` stays fast. Library errors (DalleError) and usage errors end as
one line on stderr with exit status 2; `--debug` shows the traceback instead.
"""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from .console import progress_bar, setup_logging

logger = logging.getLogger("dalle.cli")

app = typer.Typer(
    name="dalle",
    help="Text-to-image in the DALL-E tradition: a discrete VAE plus a GPT-style transformer.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)


class UsageError(Exception):
    """Bad command-line input found by a command itself; ends as a one-line error and exit 2."""


@app.callback()
def _root(
    debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks for errors.")] = False,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Log debug messages on stderr.")] = False,
) -> None:
    setup_logging(verbose=verbose)


def _ensure_out_dir(out_dir: Path) -> None:
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UsageError(f"cannot create output folder {out_dir} ({exc.strerror}); pass a writable --out-dir") from exc
    if not os.access(out_dir, os.W_OK | os.X_OK):
        raise UsageError(f"output folder {out_dir} is not writable; pass a writable --out-dir")


@app.command(
    epilog=(
        "Examples:\n\n"
        '  dalle generate "orange dinosaur in a suit"\n\n'
        '  dalle generate "一个穿着西服的橙色恐龙" -n 8 --seed 0 --out-dir outputs\n\n'
        '  dalle generate "red cat wearing a crown" --guidance-scale 5 --top-k 64'
    )
)
def generate(
    prompts: Annotated[list[str], typer.Argument(help="One or more prompts.", show_default=False)],
    n: Annotated[int, typer.Option("-n", "--num-images", help="Images per prompt.", min=1)] = 4,
    seed: Annotated[
        int | None, typer.Option(help="Seed of the first image; image i uses seed + i. Random when omitted.", min=0)
    ] = None,
    model: Annotated[Path | None, typer.Option(help="Checkpoint (.safetensors). Default: the shipped model.")] = None,
    out_dir: Annotated[Path, typer.Option(help="Folder for the PNG files.")] = Path("outputs"),
    temperature: Annotated[float, typer.Option(help="Sampling temperature; 0 picks the most likely token.")] = 1.0,
    top_k: Annotated[int | None, typer.Option(help="Sample only from the k most likely tokens.")] = None,
    top_p: Annotated[
        float | None, typer.Option(help="Sample from the smallest token set with this total probability.")
    ] = None,
    guidance_scale: Annotated[
        float, typer.Option(help="Classifier-free guidance; 1 turns it off, higher follows the prompt more.")
    ] = 3.0,
    batch_size: Annotated[int, typer.Option(help="Images sampled together.", min=1)] = 8,
    device: Annotated[str, typer.Option(help="cpu, cuda, cuda:N or auto.")] = "cpu",
) -> None:
    """Generate PNG images for prompts and print each written path on stdout."""
    for i, prompt in enumerate(prompts):
        if not prompt.strip():
            raise UsageError(f"prompt {i + 1} is empty; pass some text, for example 'orange dinosaur in a suit'")
    _ensure_out_dir(out_dir)

    import secrets

    from dalle.model import SamplingSettings, TextToImage
    from dalle.model.files import create_exclusive

    from .naming import next_index, output_name

    settings = SamplingSettings(temperature=temperature, top_k=top_k, top_p=top_p, guidance_scale=guidance_scale)
    pipe = TextToImage.from_pretrained(model, device=device)
    settings.validate(pipe.transformer.config.image_vocab_size)
    if seed is None:
        seed = secrets.randbelow(2**31)
        logger.info("using random seed %d", seed)

    requests = [(prompt, seed + i) for prompt in prompts for i in range(n)]
    index = next_index(out_dir)
    with progress_bar("sampling", len(requests) * pipe.transformer.config.image_len) as update:
        for start in range(0, len(requests), batch_size):
            chunk = requests[start : start + batch_size]
            images = pipe.generate_with_seeds(
                [p for p, _ in chunk],
                [s for _, s in chunk],
                settings,
                batch_size=batch_size,
                progress=lambda done, _total, offset=start: update(offset * pipe.transformer.config.image_len + done),
            )
            for (prompt, image_seed), image in zip(chunk, images, strict=True):
                while True:
                    path = out_dir / output_name(index, image_seed, prompt)
                    index += 1
                    if create_exclusive(path, lambda tmp, img=image: img.save(tmp, format="PNG")):
                        break
                print(path, flush=True)


def _register_subcommands() -> None:
    from . import train as train_commands

    app.add_typer(train_commands.train_app, name="train")
    app.add_typer(train_commands.data_app, name="data")
    app.command(name="encode")(train_commands.encode)


_register_subcommands()


def _click_exceptions() -> Any:
    """Click's exception module: Typer 0.24 and later vendor Click as typer._click, older ones import click."""
    try:
        from typer._click import exceptions
    except ImportError:
        from click import exceptions
    return exceptions


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `dalle` console script; returns the exit status."""
    click = _click_exceptions()
    args = sys.argv[1:] if argv is None else argv
    debug = "--debug" in args or os.environ.get("DALLE_DEBUG") == "1"
    command = typer.main.get_command(app)
    try:
        result = command.main(args=args, prog_name="dalle", standalone_mode=False)
    except click.NoArgsIsHelpError as exc:
        print(exc.ctx.get_help() if exc.ctx else str(exc), file=sys.stderr)
        return 2
    except click.UsageError as exc:
        hint = f" (see '{exc.ctx.command_path} --help')" if exc.ctx is not None else ""
        print(f"error: {exc.format_message()}{hint}", file=sys.stderr)
        return 2
    except typer.Abort:
        print("aborted", file=sys.stderr)
        return 130
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # The reader of stdout went away (`dalle generate ... | head -1`): stop quietly.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 0
    except Exception as exc:
        from dalle.model.errors import DalleError

        if debug or not isinstance(exc, (DalleError, UsageError)):
            raise
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return result if isinstance(result, int) else 0


def entry() -> None:
    sys.exit(main())
