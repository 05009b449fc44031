"""How the cost of one forward + backward pass of nn.RNN grows with the sequence length T.

Backprop through time visits every step once forward and once backward, so the *work* grows
linearly in T: four times the steps, four times the work. Whether the *time* does is measured,
not assumed: each length gets one untimed warm-up pass (first-use costs: memory the allocator
has not handed out yet, caches), then ``--repeats`` timed passes, and the script prints the
median time per step for each T and says what it sees. CPU time (``time.process_time``) counts
only this process's work, so it stays meaningful on a busy machine, where wall time also counts
the waits for a core. Run:

    python examples/bptt_time_scaling.py [--lengths 250,500,1000,2000] [--repeats 7] [--device cpu]
"""

import argparse
import statistics
import time

import numpy as np

import tinygrad_rnn as tg
from tinygrad_rnn import nn
from tinygrad_rnn.threads import add_threads_argument, set_blas_threads, tune_malloc

LINEAR_SPREAD = 0.30  # per-step costs within 30 % of each other (largest / smallest) count as linear


def time_forward_backward(T, batch, hidden, features, device, repeats):
    """Median wall and CPU seconds of ``repeats`` passes of forward + backward
    (loss = mean of the outputs + mean of the last states), after one untimed warm-up pass."""
    rnn = nn.RNN(features, hidden, rng=np.random.default_rng(0), device=device)
    x = tg.Tensor(
        np.random.default_rng(1).normal(size=(batch, T, features)).astype(np.float32), device=device
    )
    lengths = np.full(batch, T)
    lengths[::2] = T * 3 // 4  # a padded batch, as in training
    walls, cpus = [], []
    for i in range(repeats + 1):
        rnn.zero_grad()
        start, start_cpu = time.perf_counter(), time.process_time()
        out, h_last = rnn(x, lengths=lengths)
        (out.mean() + h_last.mean()).backward()
        tg.get_backend(device).synchronize()
        if i > 0:  # pass 0 is the warm-up
            walls.append(time.perf_counter() - start)
            cpus.append(time.process_time() - start_cpu)
        del out, h_last
    return statistics.median(walls), statistics.median(cpus)


def verdict(lengths, per_step, clock):
    """One sentence on whether the per-step cost stayed flat as T grew (what linear means)."""
    lo, hi = min(per_step), max(per_step)
    first, last = per_step[0], per_step[-1]
    growth = last / first
    if hi / lo <= 1 + LINEAR_SPREAD:
        return (
            f"{clock}: linear in T — the cost per step stays within {100 * (hi / lo - 1):.0f} % "
            f"({lo:.0f}–{hi:.0f} µs), so {lengths[-1] // lengths[0]}× the steps took "
            f"{growth * lengths[-1] / lengths[0]:.1f}× the time."
        )
    return (
        f"{clock}: not linear on this run — the cost per step went from {first:.0f} µs (T={lengths[0]}) "
        f"to {last:.0f} µs (T={lengths[-1]}), ×{growth:.2f}; on a busy machine wall time includes "
        f"waiting for a core, so rerun when it is quiet or trust the CPU-time line."
    )


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--lengths",
        default="250,500,1000,2000",
        help="sequence lengths T to time, comma-separated (default 250,500,1000,2000)",
    )
    parser.add_argument("--batch", type=int, default=32, help="sequences per batch B (default 32)")
    parser.add_argument("--hidden", type=int, default=64, help="hidden size H (default 64)")
    parser.add_argument("--features", type=int, default=32, help="input size E (default 32)")
    parser.add_argument("--device", default="cpu", help="cpu | cuda (default cpu)")
    parser.add_argument(
        "--repeats",
        type=int,
        default=7,
        help="timed passes per length after one warm-up; the median is shown (default 7)",
    )
    add_threads_argument(parser)
    args = parser.parse_args()
    lengths = sorted(int(t) for t in args.lengths.split(","))
    if len(lengths) < 2 or lengths[0] < 1 or args.repeats < 1:
        parser.error("give at least two lengths of 1 or more, and --repeats of 1 or more")
    threads = set_blas_threads(args.threads)
    tune_malloc()  # the process's allocator keeps freed memory for the next step
    print(
        f"nn.RNN forward + backward, B={args.batch}, E={args.features}, H={args.hidden}, float32, "
        f"device={args.device}; median of {args.repeats} after a warm-up; {threads}"
    )
    wall_per_step, cpu_per_step = [], []
    for T in lengths:
        wall, cpu = time_forward_backward(
            T, args.batch, args.hidden, args.features, args.device, args.repeats
        )
        wall_per_step.append(1e6 * wall / T)
        cpu_per_step.append(1e6 * cpu / T)
        print(
            f"  T={T:>6}: wall {wall:7.3f} s ({wall_per_step[-1]:6.1f} µs/step)   "
            f"cpu {cpu:7.3f} s ({cpu_per_step[-1]:6.1f} µs/step)",
            flush=True,
        )
    print(verdict(lengths, cpu_per_step, "CPU time"))
    print(verdict(lengths, wall_per_step, "wall time"))


if __name__ == "__main__":
    main()
