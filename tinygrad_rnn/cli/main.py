"""``tinygrad-rnn``: the parser and the entry point.

A thin shell over the package: each subcommand parses its arguments and calls library code.
Expected failures (bad input, a missing extra, an unusable device, a broken run directory) are
printed as one ``error:`` line with exit status 2 — no traceback. Set ``TINYGRAD_RNN_DEBUG=1``
to get the full traceback instead (when the one line hides a bug; ``0`` leaves it off). A closed
pipe (``… | head``) ends the command quietly.
"""

from __future__ import annotations

import argparse
import os
import sys

from ..threads import set_blas_threads, tune_malloc
from . import bptt, tasks
from .errors import EXPECTED_ERRORS


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tinygrad-rnn",
        description="Train recurrent networks (vanilla RNN, LSTM, GRU) built from a from-scratch autograd "
        "engine on three tasks, and inspect backpropagation through time.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for add in (tasks.add_parsers, bptt.add_parser):  # each adds its subcommands, setting ``func``
        add(sub)
    return parser


def debugging() -> bool:
    """``TINYGRAD_RNN_DEBUG`` set to anything but empty, 0, false, no or off: show tracebacks."""
    return os.environ.get("TINYGRAD_RNN_DEBUG", "").strip().lower() not in ("", "0", "false", "no", "off")


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    _line_buffered_stdout()
    # One BLAS thread unless --threads says otherwise (tinygrad_rnn/threads.py says why).
    args.threads_line = set_blas_threads(getattr(args, "threads", None))
    tune_malloc()  # keep freed memory for the next step instead of faulting it in again (threads.py)
    try:
        return args.func(args) or 0
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # The reader went away (``… | head``): stop quietly, as Unix tools do. Output still
        # buffered for the closed pipe would fail again at exit, so stdout goes to devnull.
        _silence_stdout()
        return 141  # 128 + SIGPIPE, what a shell reports for it
    except MemoryError as e:
        if debugging():
            raise
        print(
            f"error: out of memory{': ' + one_line(str(e)) if str(e) else ''} "
            "(smaller --hidden, --embed, --layers or --batch-size need less)",
            file=sys.stderr,
        )
        return 2
    except EXPECTED_ERRORS as e:
        if debugging():
            raise
        message = str(e) if not isinstance(e, KeyError) else f"missing key {e}"
        print(f"error: {one_line(message)}", file=sys.stderr)
        return 2


def _line_buffered_stdout() -> None:
    """Show each line as it is printed, also in a log file or a pipe (block-buffered otherwise:
    a logged run would look silent until the buffer fills)."""
    reconfigure = getattr(sys.stdout, "reconfigure", None)
    if reconfigure is not None:
        try:
            reconfigure(line_buffering=True)
        except (ValueError, OSError):  # a closed or unusual stream: leave it
            pass


def _silence_stdout() -> None:
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError, AttributeError):  # no real file behind sys.stdout (a test's capture)
        pass


def one_line(message: str) -> str:
    """A library message that lists problems one per line (e.g. every mismatched parameter of a
    checkpoint), joined into one line: ``head: item; item; …``."""
    lines = [line.strip() for line in message.splitlines() if line.strip()]
    if len(lines) <= 1:
        return lines[0] if lines else message
    return lines[0] + " " + "; ".join(lines[1:])
