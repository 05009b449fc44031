"""How the cost of one forward + backward pass of nn.RNN grows with the sequence length T.

Backprop through time visits every step once forward and once backward, so the time should grow
linearly in T: four times the steps, about four times the seconds. Run:

    python examples/bptt_time_scaling.py [--lengths 500,2000] [--batch 32] [--hidden 64] [--device cpu]
"""

import argparse
import time

import numpy as np

import tinygrad_rnn as tg
from tinygrad_rnn import nn


def time_forward_backward(T, batch, hidden, features, device, repeats):
    """Best wall and CPU time of `repeats` runs of forward + backward (loss = mean of outputs).

    CPU time (``time.process_time``) is less disturbed than wall time on a busy machine.
    """
    rnn = nn.RNN(features, hidden, rng=np.random.default_rng(0), device=device)
    x = tg.Tensor(np.random.default_rng(1).normal(size=(batch, T, features)).astype(np.float32), device=device)
    lengths = np.full(batch, T)
    lengths[::2] = T * 3 // 4  # a padded batch, as in training
    best_wall = best_cpu = float("inf")
    for _ in range(repeats):
        rnn.zero_grad()
        start, start_cpu = time.perf_counter(), time.process_time()
        out, h_last = rnn(x, lengths=lengths)
        (out.mean() + h_last.mean()).backward()
        tg.get_backend(device).synchronize()
        best_wall = min(best_wall, time.perf_counter() - start)
        best_cpu = min(best_cpu, time.process_time() - start_cpu)
        del out, h_last
    return best_wall, best_cpu


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lengths", default="500,2000")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--hidden", type=int, default=64)
    parser.add_argument("--features", type=int, default=32)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    lengths = [int(t) for t in args.lengths.split(",")]
    print(f"nn.RNN forward + backward, B={args.batch}, E={args.features}, H={args.hidden}, "
          f"float32, device={args.device}, best of {args.repeats}")
    first = None
    for T in lengths:
        wall, cpu = time_forward_backward(T, args.batch, args.hidden, args.features, args.device, args.repeats)
        first = first or (T, wall, cpu)
        print(f"  T={T:>6}: wall {wall:7.3f} s ({1e6 * wall / T:6.1f} µs/step)   "
              f"cpu {cpu:7.3f} s ({1e6 * cpu / T:6.1f} µs/step)   "
              f"(time ratio)/(length ratio) vs T={first[0]}: wall {(wall / first[1]) / (T / first[0]):.2f}, "
              f"cpu {(cpu / first[2]) / (T / first[0]):.2f}")


if __name__ == "__main__":
    main()
