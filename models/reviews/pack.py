"""Copy a trained review classifier's run directory into the repository, small: what ``predict``
and ``evaluate`` read, and nothing else.

    python models/reviews/pack.py RUN_DIR models/reviews/NAME

Writes ``config.json``, ``vocab.json`` and ``metrics.json`` as they are, and ``best.npz`` with the
model's weights only (no Adam moments, which are twice the weights and serve only ``--resume``),
compressed. The weights are copied bit for bit: the script loads both files into models and
checks every parameter is equal before it returns. ``last.npz`` and ``plot.png`` stay behind, so
a packed directory cannot be resumed, only read.
"""

from __future__ import annotations

import json
import os
import shutil
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(os.path.dirname(HERE)))      # the checkout's tinygrad_rnn

from tinygrad_rnn.serialization import _read          # noqa: E402  (the checked reader of the format)
from tinygrad_rnn.files import atomic_write         # noqa: E402
from tinygrad_rnn.runs import load_config, load_run, run_file  # noqa: E402

KEPT = ("config.json", "vocab.json", "metrics.json")


def pack(source: str, target: str) -> None:
    config = load_config(source)
    if (config["task"], config["data"]) != ("classify", "reviews"):
        raise SystemExit(f"{source} is a {config['task']} run on {config['data']}, not a review classifier")
    if os.path.exists(target) and os.listdir(target):
        raise SystemExit(f"{target} is not empty; remove it first")
    arrays = _read(run_file(source, "best.npz"))
    header = json.loads(arrays.pop("__meta__").tobytes().decode("utf-8"))
    header["optimizer"] = None
    kept = {k: v for k, v in arrays.items() if k.startswith("model/")}
    kept["__meta__"] = np.frombuffer(json.dumps(header).encode("utf-8"), dtype=np.uint8)
    os.makedirs(target, exist_ok=True)
    for name in KEPT:
        shutil.copyfile(run_file(source, name), os.path.join(target, name))
    with atomic_write(os.path.join(target, "best.npz")) as f:
        np.savez_compressed(f, **kept)
    _, original, _, _ = load_run(source, "cpu")
    _, packed, _, _ = load_run(target, "cpu")
    for (name, a), (_, b) in zip(original.state_dict().items(), packed.state_dict().items()):
        if not np.array_equal(a, b):
            raise SystemExit(f"{name} differs after packing")
    size = sum(os.path.getsize(os.path.join(target, n)) for n in os.listdir(target))
    print(f"{source} -> {target}: {size / 1e6:.2f} MB")


if __name__ == "__main__":
    if len(sys.argv) != 3:
        raise SystemExit("usage: python models/reviews/pack.py RUN_DIR models/reviews/NAME")
    pack(sys.argv[1], sys.argv[2])
