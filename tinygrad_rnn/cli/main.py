"""``tinygrad-rnn``: the parser and the entry point.

A thin shell over the package: each subcommand parses its arguments and calls library code.
Expected failures (bad input, a missing extra, an unusable device, a broken run directory) are
printed as one ``error:`` line with exit status 2 — no traceback. Set ``TINYGRAD_RNN_DEBUG=1``
to get the full traceback instead (when the one line hides a bug).
"""

from __future__ import annotations

import argparse
import os
import sys

from . import bptt, tasks
from .errors import EXPECTED_ERRORS


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tinygrad-rnn",
        description="Train and inspect vanilla RNNs built from a from-scratch autograd engine.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for add in (tasks.add_parsers, bptt.add_parser):   # each adds its subcommands, setting ``func``
        add(sub)
    return parser


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args) or 0
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except EXPECTED_ERRORS as e:
        if os.environ.get("TINYGRAD_RNN_DEBUG"):
            raise
        message = str(e) if not isinstance(e, KeyError) else f"missing key {e}"
        print(f"error: {one_line(message)}", file=sys.stderr)
        return 2


def one_line(message: str) -> str:
    """A library message that lists problems one per line (e.g. every mismatched parameter of a
    checkpoint), joined into one line: ``head: item; item; …``."""
    lines = [line.strip() for line in message.splitlines() if line.strip()]
    if len(lines) <= 1:
        return lines[0] if lines else message
    return lines[0] + " " + "; ".join(lines[1:])

