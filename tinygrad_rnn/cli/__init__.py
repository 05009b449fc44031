"""``tinygrad-rnn``: the command line (also ``python -m tinygrad_rnn``), the top layer.

A thin shell over the library; nothing below imports it.

* :mod:`.main` — the parser and :func:`main` (one ``error:`` line for expected failures);
* :mod:`.tasks` — ``train``, ``predict``, ``evaluate`` (run directories: :mod:`tinygrad_rnn.runs`);
* :mod:`.bptt` — ``bptt experiment | flow | graph | trace`` (the tools of :mod:`tinygrad_rnn.bptt`);
* :mod:`.errors` — :class:`CLIError` and the errors shown as one line.
"""

from .errors import CLIError
from .main import build_parser, main, one_line

__all__ = ["main", "build_parser", "one_line", "CLIError"]
