"""Peak memory (tracemalloc) and time of one LSTM training step, plain BPTT vs checkpoint=k.

    python benchmarks/checkpoint_cost.py --T 2000 --batch 32 --hidden 128 [--k K]

Each measurement runs in a fresh process (one config per process: no allocator history shared).
The step: outputs of nn.LSTM(E, H) over x (B, T, E), loss = mean(outputs²), backward. Memory is
tracemalloc's peak during the step minus what was allocated before it (model, x); time is the
best of ``--repeats`` steps, measured without tracemalloc (which slows Python down).
"""

import argparse
import json
import subprocess
import sys

import numpy as np


def one(T, B, H, E, k, what, repeats):
    import tinygrad_rnn as tg
    from tinygrad_rnn import nn
    from tinygrad_rnn.bptt.compare import best_time, peak_memory

    layer = nn.LSTM(E, H, checkpoint=k, rng=np.random.default_rng(0))
    x = tg.Tensor(np.random.default_rng(1).standard_normal((B, T, E)).astype(np.float32))

    def step():
        out, _ = layer(x)
        loss = (out**2).mean()
        loss.backward()
        layer.zero_grad()

    step()  # warm up (BLAS, caches)
    if what == "memory":
        return peak_memory(step)[1]
    return best_time(step, repeats, budget=0)  # exactly ``repeats`` steps


def main():
    from tinygrad_rnn.bptt.compare import segment_length

    ap = argparse.ArgumentParser()
    ap.add_argument("--T", type=int, default=2000)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--hidden", type=int, default=128)
    ap.add_argument("--input", type=int, default=32)
    ap.add_argument("--k", type=int, default=None, help="segment length (default: round(sqrt(T)))")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--one", nargs=2, metavar=("K", "WHAT"), help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.one:
        k = None if a.one[0] == "none" else int(a.one[0])
        print(json.dumps(one(a.T, a.batch, a.hidden, a.input, k, a.one[1], a.repeats)))
        return
    k = a.k or segment_length(a.T)
    results = {}
    for label, kk in (("plain", "none"), (f"checkpoint={k}", str(k))):
        for what in ("memory", "time"):
            cmd = [
                sys.executable,
                __file__,
                "--T",
                str(a.T),
                "--batch",
                str(a.batch),
                "--hidden",
                str(a.hidden),
                "--input",
                str(a.input),
                "--repeats",
                str(a.repeats),
                "--one",
                kk,
                what,
            ]
            results[label, what] = json.loads(
                subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
            )
    print(f"LSTM step, T={a.T}, B={a.batch}, H={a.hidden}, E={a.input}, float32")
    for label in ("plain", f"checkpoint={k}"):
        print(
            f"  {label:16s} peak {results[label, 'memory'] / 2**20:8.1f} MiB   "
            f"time {results[label, 'time']:7.2f} s"
        )
    p, c = ("plain", f"checkpoint={k}")
    print(
        f"  ratio: memory {results[c, 'memory'] / results[p, 'memory']:.3f}, "
        f"time {results[c, 'time'] / results[p, 'time']:.2f}"
    )


if __name__ == "__main__":
    main()
