"""The `dalle` command line.

Heavy modules (torch, transformers) are imported inside the commands, so
`dalle --help` stays fast. Library errors (DalleError) and usage errors end as
one line on stderr with exit status 2; `--debug` shows the traceback instead.
"""

from __future__ import annotations

import logging
import os
import sys
import traceback
from typing import Annotated, Any

import typer

from .console import StdoutClosed, UsageError, setup_logging

logger = logging.getLogger("dalle.cli")

app = typer.Typer(
    name="dalle",
    help="Text-to-image in the DALL-E tradition: a discrete VAE plus a GPT-style transformer.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)


def _print_version(value: bool) -> None:
    if value:
        from importlib.metadata import version

        print(f"dalle {version('dalle')}")
        raise typer.Exit()


@app.callback()
def _root(
    debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks for errors.")] = False,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Log debug messages on stderr.")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Print nothing on stderr but errors.")] = False,
    version: Annotated[
        bool,
        typer.Option("--version", help="Print the dalle version and exit.", callback=_print_version, is_eager=True),
    ] = False,
) -> None:
    setup_logging(verbose=verbose, quiet=quiet)


def _register_subcommands() -> None:
    from . import evaluate as evaluate_command
    from . import generate as generate_command
    from . import train as train_commands

    app.command(name="generate", epilog=generate_command.EXAMPLES)(generate_command.generate)
    app.command(name="info")(generate_command.info)

    app.add_typer(train_commands.train_app, name="train")
    app.add_typer(train_commands.data_app, name="data")
    app.command(name="encode")(train_commands.encode)
    app.command(name="eval", epilog=evaluate_command.EXAMPLES)(evaluate_command.evaluate)


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
    except (StdoutClosed, BrokenPipeError):
        # The reader of stdout went away (`dalle generate ... | head -1`): stop quietly. Pointing
        # stdout at /dev/null keeps the interpreter's final flush from failing again.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 0
    except Exception as exc:
        from dalle.model.errors import DalleError

        if not isinstance(exc, (DalleError, UsageError)):
            raise
        if debug:  # the traceback as well, but bad input still exits with 2
            traceback.print_exc()
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return result if isinstance(result, int) else 0


def entry() -> None:
    sys.exit(main())
