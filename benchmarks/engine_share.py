"""How much of a training step is the engine's own plumbing, and how fast could a step be without it.

    python benchmarks/engine_share.py [--cell rnn|lstm|gru] [--config small|medium|large|adding]
                                      [--steps 40]

The step is bench.py's autograd step (one BLAS thread, glibc's malloc tuned as bench.py does),
timed in rounds of five steps alternating with the hand-written NumPy sweep of bench.py and, when
torch is installed, PyTorch's fused layer and the PyTorch loop of the same ops; every block
starts from the initial weights, as in bench.py. Printed, in ms per step (wall clock, ``perf_counter``, mean):

* the forward under ``no_grad`` and the same forward recorded: their difference is what recording
  costs, Python and the arrays the recorded ops keep alive together;
* the backward walk, and inside it the ops' own backwards (formulas), the gathered Unbind copies
  (``tensor._Gathered.add``) and the leaves' accumulation (``tensor._accumulate_leaf``); what
  is left is the walk's own Python, the sums where paths meet and the freeing of what the
  visited ops held;
* **the floor**: the forward under ``no_grad`` + the backward formulas + the SGD update — what a
  step would cost if recording, walking, gathering and accumulating were free. No change to the
  engine alone can make a step faster than that while the ops' formulas stay as they are (a
  lower bound on any plumbing: it even drops the copies of δ_t and the ``+=`` into ∂L/∂V that
  the hand-written sweep pays too);
* the floor with ∂L/∂V made one product over time: the T per-step products h_{t−1}ᵀ δ_t (and
  their sum) replaced by one (T·B)-row product over arrays already side by side, as the
  hand-written sweep does. Timed on random arrays of the step's shapes, stacking left out: the
  best any regrouping of that sum could do.

Each is divided by the reference's step (and PyTorch's): if a target ratio is below the
floor's, the target cannot be met by plumbing.

``--gc`` chooses what Python's cyclic garbage collector does: ``default`` leaves it as Python sets
it, ``frozen`` freezes the objects alive before timing (bench.py's ``freeze_startup_objects`` says
why that could matter), ``off`` switches it off while the steps are timed.

The pieces are timed by wrapping the engine's functions, which adds about 0.1 µs per call.
"""

import argparse
import gc
import os
import statistics
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from bench import (  # noqa: E402
    CELLS,
    CONFIGS,
    Autograd,
    NumpyBPTT,
    TorchLoop,
    TorchRNN,
    freeze_startup_objects,
    import_torch,
    make_problem,
)

from tinygrad_rnn import no_grad  # noqa: E402
from tinygrad_rnn import tensor as engine  # noqa: E402

# What the walk's three wrapped functions do: the ops' formulas, the gathered Unbind copies, the
# leaves' accumulation (in the order of Instrumented.originals).
WRAPPED_PARTS = ("formulas", "gathering", "leaves")


class Instrumented:
    """bench.py's autograd step, with each part timed: {part: seconds per step}.

    The engine's three functions are wrapped once; the wrappers stand in for them only while
    ``step`` walks the graph back, and add what they spend to the current step's ``spent``."""

    def __init__(self, model: Autograd):
        self.model = model
        self.spent: dict[str, float] = {}
        self.originals = (engine._input_grads, engine._Gathered.add, engine._accumulate_leaf)
        self.wrapped = tuple(self._timed(fn, key) for fn, key in zip(self.originals, WRAPPED_PARTS))

    def _timed(self, fn, key):
        def wrapper(*a):
            t0 = time.perf_counter()
            try:
                return fn(*a)
            finally:
                self.spent[key] += time.perf_counter() - t0

        return wrapper

    def step(self) -> dict:
        self.spent = dict.fromkeys(WRAPPED_PARTS, 0.0)
        clock = time.perf_counter
        model = self.model
        model.opt.zero_grad()
        t0 = clock()
        with no_grad():
            model.loss()
        t1 = clock()
        loss = model.loss()
        t2 = clock()
        engine._input_grads, engine._Gathered.add, engine._accumulate_leaf = self.wrapped
        try:
            loss.backward()
        finally:
            engine._input_grads, engine._Gathered.add, engine._accumulate_leaf = self.originals
        t3 = clock()
        model.opt.step()
        t4 = clock()
        self.spent.update(plain=t1 - t0, recorded=t2 - t1, walk=t3 - t2, update=t4 - t3)
        return self.spent


def weight_products(B, T, H, G, repeats=20) -> tuple[float, float]:
    """Seconds for ∂L/∂V = Σ_t h_{t−1}ᵀ δ_t as T products added up, and as one product of the
    (T·B)-row stacks (stacking not counted), on random float32 arrays; best of ``repeats``.
    The two must agree (the same sum, grouped differently), or nothing is returned."""
    rng = np.random.default_rng(0)
    hs = [rng.standard_normal((B, H), dtype=np.float32) for _ in range(T)]
    ds = [rng.standard_normal((B, G * H), dtype=np.float32) for _ in range(T)]
    h_all, d_all = np.concatenate(hs), np.concatenate(ds)
    per_step, one = [], []
    for _ in range(repeats):
        t0 = time.perf_counter()
        dV = hs[0].T @ ds[0]
        for h, d in zip(hs[1:], ds[1:]):
            dV += h.T @ d
        t1 = time.perf_counter()
        dV_one = h_all.T @ d_all
        t2 = time.perf_counter()
        per_step.append(t1 - t0)
        one.append(t2 - t1)
    scale = float(np.abs(dV_one).max())
    if not np.allclose(dV, dV_one, rtol=0, atol=1e-4 * scale):
        raise AssertionError("the per-step sum and the one product of dL/dV disagree")
    return min(per_step), min(one)


def measure(cell: str, config: str, steps: int, block: int = 5, gc_mode: str = "default") -> dict:
    """Time the parts of our step beside the reference (and PyTorch); seconds per step, means.

    Returns ``{"shape", "steps", "load", "parts", "others", "step", "floor", "regrouped",
    "products"}``: ``parts`` our step's pieces (``plain``, ``recorded``, ``walk``, ``formulas``,
    ``gathering``, ``leaves``, ``update``), ``others`` each other implementation's step,
    ``full_gc_passes`` how many full passes of the cyclic garbage collector our steps triggered.
    ``gc_mode``: ``"default"`` (Python's cyclic garbage collector as Python sets it), ``"frozen"``
    (the objects alive before timing frozen: bench.py's ``freeze_startup_objects``) or ``"off"``
    (the collector switched off during every timed block)."""
    from tinygrad_rnn.threads import tune_malloc

    tune_malloc()
    torch = import_torch(1)
    B, T, E, H, C = CONFIGS[config]
    problem = make_problem(B, T, E, H, C, cell=cell)
    ours = Instrumented(Autograd(problem, "cpu"))
    others: list = [NumpyBPTT(problem, "cpu")]
    if torch is not None:
        others += [TorchRNN(problem, "cpu", torch), TorchLoop(problem, "cpu", torch)]
    for impl in [ours.model, *others]:
        for _ in range(3):
            impl.step()
    if gc_mode == "frozen":
        freeze_startup_objects()

    parts: dict[str, list[float]] = {}
    totals: dict[str, list[float]] = {impl.name: [] for impl in others}
    candidates = [*others, ours]
    full_passes = {"ours": 0, "now": False}  # the collector's full passes during our steps

    def count_full_passes(phase, info):
        if phase == "start" and info["generation"] == 2 and full_passes["now"]:
            full_passes["ours"] += 1

    gc.callbacks.append(count_full_passes)
    load_before = os.getloadavg()[0]
    for r in range(max(1, steps // block)):
        for impl in candidates[r % len(candidates) :] + candidates[: r % len(candidates)]:
            (impl.model if impl is ours else impl).reset()
            if gc_mode == "off":
                gc.disable()
            for _ in range(block):
                if impl is ours:
                    full_passes["now"] = True
                    for key, seconds in ours.step().items():
                        parts.setdefault(key, []).append(seconds)
                    full_passes["now"] = False
                else:
                    t0 = time.perf_counter()
                    impl.step()
                    totals[impl.name].append(time.perf_counter() - t0)
            gc.enable()
    gc.callbacks.remove(count_full_passes)
    load = (load_before, os.getloadavg()[0])

    mean = {key: statistics.fmean(v) for key, v in parts.items()}
    floor = mean["plain"] + mean["formulas"] + mean["update"]
    per_step, one = weight_products(B, T, H, CELLS[cell])
    return {
        "shape": (B, T, E, H),
        "steps": len(parts["walk"]),
        "load": load,
        "parts": mean,
        "others": {name: statistics.fmean(v) for name, v in totals.items()},
        "step": mean["recorded"] + mean["walk"] + mean["update"],
        "floor": floor,
        "regrouped": floor - (per_step - one),
        "products": (per_step, one),
        "full_gc_passes": full_passes["ours"],
    }


def report(cell: str, config: str, m: dict) -> None:
    def ms(x):
        return f"{1e3 * x:.2f} ms"

    B, T, E, H = m["shape"]
    p = m["parts"]
    print(
        f"{cell} {config} (B {B}, T {T}, E {E}, H {H}), {m['steps']} steps each, "
        f"load average {m['load'][0]:.2f} before, {m['load'][1]:.2f} after; ms per step (mean)"
    )
    print(f"  forward under no_grad {ms(p['plain'])}, recorded {ms(p['recorded'])}")
    print(
        f"  the cyclic garbage collector's full passes during our {m['steps']} steps: "
        f"{m['full_gc_passes']} ({len(gc.get_objects())} objects tracked in this process)"
    )
    rest = p["walk"] - p["formulas"] - p["gathering"] - p["leaves"]
    print(
        f"  backward {ms(p['walk'])}: formulas {ms(p['formulas'])}, "
        f"gathering {ms(p['gathering'])}, leaves {ms(p['leaves'])}, "
        f"the walk's own Python and sums {ms(rest)}; SGD update {ms(p['update'])}"
    )
    share = 100 * (p["recorded"] - p["plain"] + rest) / (p["recorded"] + p["walk"])
    print(f"  recording (recorded - no_grad) and the walk's rest: {share:.1f} % of forward + backward")
    per_step, one = m["products"]
    print(
        f"  dL/dV as {T} products {ms(per_step)}, as one product {ms(one)} "
        f"(random arrays of the step's shapes, stacking not counted)"
    )
    for name, seconds in m["others"].items():
        print(f"  {name}: {ms(seconds)}")
    rows = (
        ("our step", m["step"]),
        ("floor: no plumbing", m["floor"]),
        ("floor, dL/dV one product", m["regrouped"]),
    )
    for label, seconds in rows:
        ratios = ", ".join(f"÷ {name} {seconds / other:.2f}" for name, other in m["others"].items())
        print(f"  {label}: {ms(seconds)}, {ratios}")


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--cell", choices=tuple(CELLS), default="lstm")
    parser.add_argument("--config", choices=tuple(CONFIGS), default="medium")
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument(
        "--gc",
        choices=("default", "frozen", "off"),
        default="default",
        help="Python's cyclic garbage collector: as Python sets it (default), the objects alive "
        "before timing frozen (bench.py --gc-freeze), or off while timing",
    )
    args = parser.parse_args(argv)

    from tinygrad_rnn.threads import set_blas_threads

    print(f"{set_blas_threads(1)}; cyclic garbage collector: {args.gc}")
    report(args.cell, args.config, measure(args.cell, args.config, args.steps, gc_mode=args.gc))


if __name__ == "__main__":
    main()
