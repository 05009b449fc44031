"""What a run's settings may be: the ``config.json`` format and the checks on every setting.

A run is described by one flat dict (``config.json``): the format marker and version, the task
and data set, and the settings of :data:`SETTINGS` plus the model's switches (``bidirectional``,
``feed_context``, ``attention``, ``cell``, ``dropout``; seq2seq also ``decode_max_len``). Every
setting has a kind and a range in :data:`SCHEMA`; :func:`setting_problem` says what is wrong with
one value, :func:`check_config` checks a whole configuration before anything is built from it.
Which task and data set take which settings is the task registry's (:mod:`tinygrad_rnn.tasks`).
"""

from __future__ import annotations

import math
from typing import Any

from ..nn import CELLS

CONFIG_FORMAT = "tinygrad_rnn.run"
CONFIG_VERSION = 1
MAX_DECODE_LEN = 1000  # decoding steps per output: far above any target of our data sets
# Settings every data set shares, unless its reference configuration says otherwise.
COMMON = dict(batch_size=64, clip=1.0, layers=1, seed=0, pooling="mean", direction="to_digits")
# The options that make up a run (config.json): model, data and training settings.
SETTINGS = (
    "epochs",
    "embed",
    "hidden",
    "layers",
    "pooling",
    "direction",
    "lr",
    "batch_size",
    "clip",
    "patience",
    "max_len",
    "min_freq",
    "seed",
    "limit",
)
# What every config.json holds (a seq2seq run also its decode_max_len).
REQUIRED = (
    "task",
    "data",
    "embed",
    "hidden",
    "layers",
    "bidirectional",
    "feed_context",
    "pooling",
    "direction",
    "batch_size",
    "min_freq",
    "max_len",
    "limit",
    "epochs",
    "lr",
    "clip",
    "patience",
    "seed",
    "attention",
    "cell",
    "dropout",
)
DEFAULT_CELL = "rnn"
DEFAULT_DROPOUT = 0.0

# What each setting may be: (kind, smallest value or the allowed names). "?" = may be null.
# The rule's type goes with the kind (an int, a tuple of names, or None), hence Any.
SCHEMA: dict[str, tuple[str, Any]] = {
    "epochs": ("int", 1),
    "embed": ("int", 1),
    "hidden": ("int", 1),
    "layers": ("int", 1),
    "batch_size": ("int", 1),
    "min_freq": ("int", 1),
    "seed": ("int", 0),
    "max_len": ("int?", 1),
    "limit": ("int?", 1),
    "patience": ("int?", 1),
    "lr": ("positive", None),
    "clip": ("positive", None),
    "pooling": ("name", ("last", "mean")),
    "direction": ("name", ("to_digits", "to_chinese")),
    "bidirectional": ("bool", None),
    "feed_context": ("bool", None),
    "decode_max_len": ("int", 1),
    "attention": ("name?", ("additive",)),
    "cell": ("name", tuple(CELLS)),
    "dropout": ("probability", None),
}

# Upper bounds of the sizes, far above any configuration of docs/results.md: a config.json (or an
# option) asking for more is refused in one line before anything is allocated ("embed": 1e8 would
# otherwise claim gigabytes for the embedding before failing).
MAXIMA = {
    "embed": 4096,
    "hidden": 4096,
    "layers": 16,
    "batch_size": 65536,
    "epochs": 100_000,
    "decode_max_len": MAX_DECODE_LEN,
}


class RunError(ValueError):
    """A run directory is missing, incomplete or broken, or a setting is out of range."""


def setting_problem(key: str, value) -> str | None:
    """Why ``value`` is not a valid ``key`` setting ("must be …, got …"), or None when it is."""
    kind, rule = SCHEMA[key]
    if kind.endswith("?") and value is None:
        return None
    if kind.startswith("int"):
        if not isinstance(value, int) or isinstance(value, bool):
            return f"must be an integer, got {value!r}"
        if value < rule:
            return f"must be at least {rule}, got {value}"
        if key in MAXIMA and value > MAXIMA[key]:
            return f"must be at most {MAXIMA[key]}, got {value}"
    elif kind == "positive":
        if (
            not isinstance(value, (int, float))
            or isinstance(value, bool)
            or not math.isfinite(value)
            or value <= 0
        ):
            return f"must be positive and finite, got {value!r}"
    elif kind == "probability":  # of dropping an element: 1 would drop everything
        if not isinstance(value, (int, float)) or isinstance(value, bool) or not 0 <= value < 1:
            return f"must be a probability in [0, 1), got {value!r}"
    elif kind.startswith("name"):
        if value not in rule:
            return f"must be one of {', '.join(rule)}, got {value!r}"
    elif not isinstance(value, bool):
        return f"must be true or false, got {value!r}"
    return None


def check_config(config, where: str) -> dict:
    """``config`` (a run's settings) checked completely: format marker, task and data set, every
    setting's type and range, no unknown names. Raises :class:`RunError` naming ``where``."""
    from . import TASKS

    if not isinstance(config, dict) or config.get("format") != CONFIG_FORMAT:
        raise RunError(f'{where}: not a tinygrad-rnn run configuration (no "format": "{CONFIG_FORMAT}")')
    if config.get("version") != CONFIG_VERSION:
        raise RunError(
            f"{where}: run configuration version {config.get('version')!r}; "
            f"this code reads version {CONFIG_VERSION}"
        )
    name, data = config.get("task"), config.get("data")
    if name not in TASKS:
        raise RunError(f"{where}: unknown task {name!r} (one of {', '.join(TASKS)})")
    task = TASKS[name]
    if data not in task.datasets:
        raise RunError(
            f"{where}: data set {data!r} does not fit task {name!r}, which takes {' or '.join(task.datasets)}"
        )
    required = REQUIRED + task.saved_settings
    missing = [k for k in required if k not in config]
    if missing:
        raise RunError(f"{where}: broken config file (missing: {', '.join(missing)})")
    unknown = sorted(set(config) - set(required) - {"format", "version"})
    if unknown:
        raise RunError(f"{where}: unknown settings {', '.join(map(repr, unknown))}")
    for key in required:
        if key in SCHEMA:
            problem = setting_problem(key, config[key])
            if problem:
                raise RunError(f"{where}: {key!r} {problem}")
    if "dropout" not in task.options and config["dropout"] != 0:
        raise RunError(f"{where}: 'dropout' applies to {task.applies_to('dropout')} runs only, not to {name}")
    return config
