"""The array kernels of one RNN time step, NumPy against PyTorch, on one thread.

    python benchmarks/kernels.py [--batch 64] [--hidden 128]

Our ops are NumPy formulas; the PyTorch loop of bench.py runs the same formulas as PyTorch
kernels. This times each kernel of a step alone, on float32 arrays of the step's shapes, for the
vanilla cell (G = 1: V is (H, H)) and the LSTM (G = 4: V is (H, 4H)) — to tell how much of a gap
between the two loops is the kernels themselves, which no change to the engine can remove. Best
of five repeats of ``n`` calls, µs per call.
"""

import argparse
import time

import numpy as np


def best_us(fn, n: int = 2000, repeats: int = 5) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        for _ in range(n):
            fn()
        times.append((time.perf_counter() - t0) / n)
    return 1e6 * min(times)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--hidden", type=int, default=128)
    args = parser.parse_args(argv)

    import torch

    from tinygrad_rnn.threads import set_blas_threads, tune_malloc

    print(set_blas_threads(1))
    tune_malloc()
    torch.set_num_threads(1)
    B, H = args.batch, args.hidden
    rng = np.random.default_rng(0)
    print(f"B {B}, H {H}, float32, µs per call (best of 5 × 2000)")
    for G in (1, 4):
        h = rng.standard_normal((B, H), dtype=np.float32)
        V = rng.standard_normal((H, G * H), dtype=np.float32)
        c, g = (rng.standard_normal((B, G * H), dtype=np.float32) for _ in range(2))
        y = np.tanh(g)
        th, tV, tc, tg, ty = (torch.from_numpy(a) for a in (h, V, c, g, y))
        kernels = (
            ("addmm forward, c + h V", lambda: c + h @ V, lambda: torch.addmm(tc, th, tV)),
            ("g Vᵀ", lambda: g @ V.T, lambda: tg @ tV.T),
            ("hᵀ g", lambda: h.T @ g, lambda: th.T @ tg),
            ("tanh", lambda: np.tanh(g), lambda: torch.tanh(tg)),
            (
                "tanh backward, g (1 − y²)",
                lambda: g * (1 - y * y),
                lambda: torch.ops.aten.tanh_backward(tg, ty),
            ),
            ("add", lambda: g + c, lambda: tg + tc),
        )
        for name, ours, theirs in kernels:
            a, b = best_us(ours), best_us(theirs)
            print(f"  G {G}  {name:27s} numpy {a:7.2f}  torch {b:7.2f}  numpy ÷ torch {a / b:.2f}")


if __name__ == "__main__":
    main()
