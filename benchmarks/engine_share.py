"""How much of a training step is the engine's own plumbing: recording and the backward walk.

    python benchmarks/engine_share.py [--cell rnn|lstm|gru] [--config small|medium|large] [--steps 40]

The step is bench.py's autograd step (one BLAS thread, glibc's malloc tuned as bench.py does).
Printed, in ms per step (wall clock, ``perf_counter``, mean of ``--steps``):

* the forward under ``no_grad`` and the same forward recorded: their difference is what recording
  costs, Python and the arrays the recorded ops keep alive together;
* the backward walk, and inside it the ops' own backwards (formulas), the gathered Unbind copies
  (``tensor._Gathered.add``) and the leaves' accumulation (``tensor._accumulate_leaf``); what
  is left is the walk's own Python, the sums where paths meet and the freeing of what the
  visited ops held.

The last line adds the recording and the walk's rest: an upper bound on what the engine's own
Python costs, since both include the arrays the graph keeps alive and then frees.

The pieces are timed by wrapping the engine's functions, which adds about 0.1 µs per call.
"""

import argparse
import os
import sys
import time

# One BLAS thread, set before NumPy is loaded (bench.py's choice; see performance.md).
for _name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_name] = "1"
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from bench import CONFIGS, Autograd, make_problem  # noqa: E402


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--cell", choices=("rnn", "lstm", "gru"), default="lstm")
    parser.add_argument("--config", choices=("small", "medium", "large"), default="medium")
    parser.add_argument("--steps", type=int, default=40)
    args = parser.parse_args(argv)

    from tinygrad_rnn import no_grad
    from tinygrad_rnn import tensor as engine
    from tinygrad_rnn.threads import tune_malloc

    tune_malloc()
    B, T, E, H, C = CONFIGS[args.config]
    model = Autograd(make_problem(B, T, E, H, C, cell=args.cell), "cpu")
    for _ in range(3):
        model.step()

    spent = {"formulas": 0.0, "gathering": 0.0, "leaves": 0.0}
    clock = time.perf_counter

    def timed(fn, key):
        def wrapper(*a):
            t0 = clock()
            try:
                return fn(*a)
            finally:
                spent[key] += clock() - t0

        return wrapper

    originals = (engine._input_grads, engine._Gathered.add, engine._accumulate_leaf)
    wrapped = (
        timed(originals[0], "formulas"),
        timed(originals[1], "gathering"),
        timed(originals[2], "leaves"),
    )
    plain = recorded = walk = 0.0
    for _ in range(args.steps):
        model.opt.zero_grad()
        t0 = clock()
        with no_grad():
            model.loss()
        t1 = clock()
        loss = model.loss()
        t2 = clock()
        engine._input_grads, engine._Gathered.add, engine._accumulate_leaf = wrapped
        try:
            loss.backward()
        finally:
            engine._input_grads, engine._Gathered.add, engine._accumulate_leaf = originals
        t3 = clock()
        model.opt.step()
        plain, recorded, walk = plain + t1 - t0, recorded + t2 - t1, walk + t3 - t2

    def ms(x):
        return f"{1e3 * x / args.steps:.2f} ms"

    rest = walk - sum(spent.values())
    print(f"{args.cell} {args.config}, {args.steps} steps, ms per step")
    print(f"  forward under no_grad {ms(plain)}, recorded {ms(recorded)}")
    print(
        f"  backward {ms(walk)}: formulas {ms(spent['formulas'])}, gathering {ms(spent['gathering'])}, "
        f"leaves {ms(spent['leaves'])}, the walk's own Python and sums {ms(rest)}"
    )
    share = 100 * (recorded - plain + rest) / (recorded + walk)
    print(f"  recording (recorded - no_grad) and the walk's rest: {share:.1f} % of forward + backward")


if __name__ == "__main__":
    main()
