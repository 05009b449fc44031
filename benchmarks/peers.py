"""The same training step in the autodiff libraries a learner might pick instead, timed beside ours.

``python benchmarks/peers.py [--configs small,medium] [--steps N] [--chain N] [--json FILE]``
(``make bench-peers`` installs the ``peers`` extra into .venv and runs it).

The step is bench.py's vanilla one, float32, the same data and initial weights for everyone::

    xw = X W + b  (all T steps in one product),  h_t = tanh(xw_t + h_{t-1} V),  h_0 = 0
    logits = h_T U + c,  L = mean_i −log softmax(logits_i)[y_i],  then SGD: θ ← θ − lr ∂L/∂θ

written once per library with that library's own tensors and its own reverse mode:

* **tinygrad_rnn** — ours, through the public API (bench.py's ``autograd``); every other row is
  checked against it and divided by it.
* **numpy BPTT** — the hand-derived sweep with no graph at all (bench.py's reference).
* **HIPS autograd** — traces the Python function on NumPy arrays, then walks the trace back.
* **mygrad** — a tape of NumPy operations, as ours.
* **DeZero** — the define-by-run framework of the book "Deep Learning from Scratch 3".
* **JAX eager** — ``jax.value_and_grad`` without ``jit``: every operation dispatched one by one.
* **JAX jit** — the whole step (forward, backward and the SGD update) compiled by XLA into one
  program: no Python per operation, and elementwise work fused into the products around it.
* **tinygrad** — lazy: the step's operations become a graph that is scheduled and compiled into
  fused kernels (its CPU backend compiles them with clang).
* **torch loop** — PyTorch autograd over the same Python loop over time (bench.py's), and
  **torch nn.RNN**, its fused layer.

A library that is not installed is skipped with one line naming the ``pip install`` that brings
it. Before anything is timed, every library's loss and five gradients must equal ours (bench.py's
``check_agreement``: float32 tolerance, relative to each gradient's largest entry); one that
differs stops the run with the gradient and the element named. Timing alternates between
libraries in blocks, one BLAS thread for everyone (XLA and PyTorch told the same).

Then the cost per operation: a chain of N elementwise products ``y ← y * c`` of (64, 64) float32
arrays, forward and backward (``sum(y)`` differentiated with respect to the chain's start), in
microseconds per product — what each library spends besides the arithmetic.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import statistics
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench  # noqa: E402  (bench.py beside this file: the problem, the reference, the timing)

from tinygrad_rnn.tensor import Tensor  # noqa: E402
from tinygrad_rnn.threads import set_blas_threads, tune_malloc  # noqa: E402

CONFIGS = bench.CONFIGS
LR = bench.LR
NAMES = bench.GRAD_NAMES  # W, V, b, U, c
CHAIN_SHAPE = (64, 64)


class Skipped(Exception):
    """A peer that cannot run here; the message says why and how to get it."""


def _import(module: str, pip: str):
    try:
        return __import__(module)
    except ImportError as e:
        raise Skipped(f"not installed (pip install {pip})") from e


# ---- ours and the hand-written reference ------------------------------------------------------------


class Ours(bench.Autograd):
    name = "tinygrad_rnn"

    @staticmethod
    def chain(a, c, n):
        a = Tensor(a, requires_grad=True)
        c = Tensor(c)
        y = a
        for _ in range(n):
            y = y * c
        y.sum().backward()
        return a.grad


class NumpyByHand(bench.NumpyBPTT):
    @staticmethod
    def chain(a, c, n):
        """The floor: the forward products, then the backward's ∂y_{k+1}/∂y_k = c, by hand."""
        y = a
        for _ in range(n):
            y = y * c
        g = np.ones_like(a)
        for _ in range(n):
            g = g * c
        return g


# ---- the peers: one class each, the same step in the library's own terms ----------------------------


class Functional:
    """Peers whose gradient is a function of the parameters (HIPS autograd, JAX): the parameters
    are a list of arrays, replaced by the SGD step."""

    def __init__(self, p: bench.Problem):
        self.x, self.y = p.x, p.y
        self.initial = [w.copy() for w in p.weights().values()]
        self.reset()

    def reset(self):
        self.params = [self.asarray(w) for w in self.initial]

    def asarray(self, w):
        return w.copy()

    def loss_and_grads(self):
        loss, grads = self.value_and_grad(self.params, self.x, self.y)
        return float(loss), {n: np.asarray(g) for n, g in zip(NAMES, grads)}

    def step(self):
        _, grads = self.value_and_grad(self.params, self.x, self.y)
        self.params = [w - LR * g for w, g in zip(self.params, grads)]


def rnn_loss(xp, log_softmax, params, x, y):
    """The step's loss with array module ``xp`` (autograd.numpy, jax.numpy)."""
    W, V, b, U, c = params
    B, T, E = x.shape
    xw = (x.reshape(B * T, E) @ W + b).reshape(B, T, -1)
    h = xp.zeros((B, V.shape[0]), dtype=x.dtype)
    for t in range(T):
        h = xp.tanh(xw[:, t] + h @ V)
    logp = log_softmax(h @ U + c)
    return -xp.mean(logp[xp.arange(B), y])


class HipsAutograd(Functional):
    name = "HIPS autograd"

    def __init__(self, p):
        autograd = _import("autograd", "autograd")
        import autograd.numpy as anp

        self.anp = anp

        def log_softmax(z):
            z = z - anp.max(z, axis=1, keepdims=True)
            return z - anp.log(anp.sum(anp.exp(z), axis=1, keepdims=True))

        self.value_and_grad = autograd.value_and_grad(lambda ps, x, y: rnn_loss(anp, log_softmax, ps, x, y))
        super().__init__(p)

    def chain(self, a, c, n):
        import autograd

        def f(y):
            for _ in range(n):
                y = y * c
            return self.anp.sum(y)

        return autograd.grad(f)(a)


def _jax():
    """JAX on the CPU with one thread (XLA reads its flags when it starts, hence before import)."""
    if "jax" not in sys.modules:
        os.environ.setdefault("JAX_PLATFORMS", "cpu")
        flags = os.environ.get("XLA_FLAGS", "")
        if "intra_op_parallelism_threads" not in flags:
            os.environ["XLA_FLAGS"] = (
                flags + " --xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"
            ).strip()
    return _import("jax", "jax")


class JaxEager(Functional):
    name = "JAX eager"

    def __init__(self, p):
        jax = _jax()
        import jax.numpy as jnp

        self.jax, self.jnp = jax, jnp
        self.value_and_grad = jax.value_and_grad(lambda ps, x, y: rnn_loss(jnp, jax.nn.log_softmax, ps, x, y))
        super().__init__(p)
        self.x, self.y = jnp.asarray(p.x), jnp.asarray(p.y)

    def asarray(self, w):
        return self.jnp.asarray(w)

    def step(self):
        super().step()
        self.jax.block_until_ready(self.params)  # JAX dispatches asynchronously

    def chain(self, a, c, n):
        jnp = self.jnp
        c = jnp.asarray(c)

        def f(y):
            for _ in range(n):
                y = y * c
            return jnp.sum(y)

        return self.jax.block_until_ready(self.jax.grad(f)(jnp.asarray(a)))


class JaxJit(JaxEager):
    name = "JAX jit"

    def __init__(self, p):
        super().__init__(p)
        jax, value_and_grad = self.jax, self.value_and_grad

        def sgd(params, x, y):
            _, grads = value_and_grad(params, x, y)
            return [w - LR * g for w, g in zip(params, grads)]

        self.value_and_grad = jax.jit(value_and_grad)
        self.sgd = jax.jit(sgd)
        self._chains = {}

    def step(self):
        self.params = self.jax.block_until_ready(self.sgd(self.params, self.x, self.y))

    def chain(self, a, c, n):
        jnp = self.jnp
        if n not in self._chains:

            def f(y, c):
                for _ in range(n):
                    y = y * c
                return jnp.sum(y)

            self._chains[n] = self.jax.jit(self.jax.grad(f))
        return self.jax.block_until_ready(self._chains[n](jnp.asarray(a), jnp.asarray(c)))


class Mygrad:
    name = "mygrad"

    def __init__(self, p):
        self.mg = mg = _import("mygrad", "mygrad")
        self.x, self.y = p.x, p.y
        self.initial = [w.copy() for w in p.weights().values()]
        self.params = [mg.Tensor(w) for w in self.initial]

    def reset(self):
        self.params = [self.mg.Tensor(w) for w in self.initial]

    def loss(self):
        mg = self.mg
        W, V, b, U, c = self.params
        B, T, E = self.x.shape
        xw = mg.reshape(mg.matmul(self.x.reshape(B * T, E), W) + b, (B, T, -1))
        h = mg.zeros((B, V.shape[0]), dtype=np.float32, constant=True)
        for t in range(T):
            h = mg.tanh(xw[:, t] + mg.matmul(h, V))
        z = mg.matmul(h, U) + c
        z = z - mg.max(z, axis=1, keepdims=True)
        logp = z - mg.log(mg.sum(mg.exp(z), axis=1, keepdims=True))
        return -mg.mean(logp[np.arange(B), self.y])

    def loss_and_grads(self):
        loss = self.loss()
        loss.backward()
        return float(loss.item()), {n: w.grad for n, w in zip(NAMES, self.params)}

    def step(self):
        self.loss().backward()
        # new leaf tensors: mygrad locks the arrays of a graph against writes until it is cleared
        self.params = [self.mg.Tensor(w.data - LR * w.grad) for w in self.params]

    def chain(self, a, c, n):
        a = self.mg.Tensor(a)
        y = a
        for _ in range(n):
            y = y * c
        self.mg.sum(y).backward()
        return a.grad


def _dezero():
    """DeZero 0.0.13 still names ``np.int`` (removed in NumPy 1.24) in a class default; lend it the
    name for the import only."""
    if sys.modules.get("dezero") is not None:
        return sys.modules["dezero"]
    lent = not hasattr(np, "int")
    if lent:
        np.int = int
    try:
        return _import("dezero", "dezero")
    finally:
        if lent:
            del np.int


class Dezero:
    name = "DeZero"

    def __init__(self, p):
        self.dz = _dezero()
        import dezero.functions as F

        self.F = F
        self.x, self.y = p.x, p.y
        self.initial = [w.copy() for w in p.weights().values()]
        self.params = [self.dz.Parameter(w.copy()) for w in self.initial]

    def reset(self):
        for w, w0 in zip(self.params, self.initial):
            w.data[...] = w0

    def loss(self):
        F = self.F
        W, V, b, U, c = self.params
        B, T, E = self.x.shape
        xw = F.reshape(F.linear(self.x.reshape(B * T, E), W, b), (B, T, -1))
        h = None
        for t in range(T):
            a = F.get_item(xw, (slice(None), t))
            h = F.tanh(a if h is None else a + F.matmul(h, V))
        return F.softmax_cross_entropy(F.linear(h, U, c), self.y)

    def backward(self):
        for w in self.params:
            w.cleargrad()
        loss = self.loss()
        loss.backward()
        return loss

    def loss_and_grads(self):
        loss = self.backward()
        return float(loss.data), {n: w.grad.data for n, w in zip(NAMES, self.params)}

    def step(self):
        self.backward()
        for w in self.params:
            w.data -= LR * w.grad.data

    def chain(self, a, c, n):
        a = self.dz.Variable(a)
        y = a
        for _ in range(n):
            y = y * c
        self.F.sum(y).backward()
        return a.grad.data


class Tinygrad:
    name = "tinygrad"

    def __init__(self, p):
        tg = _import("tinygrad", "tinygrad")
        from tinygrad import Device

        try:
            device = Device.DEFAULT
        except RuntimeError as e:  # tinygrad: "no usable devices"
            clang = (
                ""
                if shutil.which("clang")
                else (
                    ": its CPU backend compiles kernels with clang, which is not on PATH (apt install clang)"
                )
            )
            raise Skipped(f"installed, but finds no usable device here{clang}") from e
        if device == "CPU" and shutil.which("clang") is None:
            raise Skipped(
                "installed, but its CPU backend compiles kernels with clang, which is not "
                "on PATH here (apt install clang)"
            )
        self.T = tg.Tensor
        self.x, self.y = tg.Tensor(p.x), tg.Tensor(p.y.astype(np.int32))
        self.initial = [w.copy() for w in p.weights().values()]
        self.params = [tg.Tensor(w.copy()).realize() for w in self.initial]

    def reset(self):
        for w, w0 in zip(self.params, self.initial):
            w.assign(self.T(w0)).realize()

    def loss(self):
        W, V, b, U, c = self.params
        B, T, E = self.x.shape
        xw = (self.x.reshape(B * T, E) @ W + b).reshape(B, T, -1)
        h = None
        for t in range(T):
            h = xw[:, t].tanh() if h is None else (xw[:, t] + h @ V).tanh()
        return (h @ U + c).sparse_categorical_crossentropy(self.y)

    def backward(self):
        for w in self.params:
            w.grad = None
        loss = self.loss()
        loss.backward()  # lazy: builds the gradients' graph only
        return loss

    def loss_and_grads(self):
        loss = self.backward()
        return float(loss.item()), {n: w.grad.numpy() for n, w in zip(NAMES, self.params)}

    def step(self):
        self.backward()
        for w in self.params:
            w.assign(w - LR * w.grad)
        self.T.realize(*self.params)  # schedules, compiles (once) and runs the step

    def chain(self, a, c, n):
        a, c = self.T(a), self.T(c)
        y = a
        for _ in range(n):
            y = y * c
        y.sum().backward()
        return a.grad.numpy()


class TorchLoop(bench.TorchLoop):
    def __init__(self, p):
        super().__init__(p, "cpu", _torch())

    def chain(self, a, c, n):
        torch = self.torch
        a = torch.tensor(a, requires_grad=True)
        c = torch.from_numpy(c)
        y = a
        for _ in range(n):
            y = y * c
        y.sum().backward()
        return a.grad.numpy()


class TorchRNN(bench.TorchRNN):
    chain = None  # the same library as the loop: one per-op row

    def __init__(self, p):
        super().__init__(p, "cpu", _torch())


def _torch():
    torch = bench.import_torch(1)
    if torch is None:
        raise Skipped("not installed (pip install torch)")
    return torch


PEERS = (HipsAutograd, Mygrad, Dezero, JaxEager, JaxJit, Tinygrad, TorchLoop, TorchRNN)
PEER_NAMES = {
    HipsAutograd: "HIPS autograd",
    Mygrad: "mygrad",
    Dezero: "DeZero",
    JaxEager: "JAX eager",
    JaxJit: "JAX jit",
    Tinygrad: "tinygrad",
    TorchLoop: "torch loop",
    TorchRNN: "torch nn.RNN",
}


def make_impls(p: bench.Problem, peers=PEERS, out=print) -> list:
    """Ours, the hand-written reference, then every peer that can run here (a line for each that cannot)."""
    impls = [Ours(p, "cpu"), NumpyByHand(p, "cpu")]
    for peer in peers:
        try:
            impls.append(peer(p))
        except Skipped as why:
            out(f"{PEER_NAMES[peer]}: skipped, {why}")
    return impls


# ---- cost per operation ---------------------------------------------------------------------------------


def per_op(impls, n: int, repeats: int = 3) -> dict:
    """Microseconds per elementwise product in a chain of ``n``, forward + backward, best of
    ``repeats`` after one warm-up (which also compiles, for JAX jit): CPU time of the whole
    process (steadier than the wall clock on a busy machine; it includes XLA's threads) and wall
    time. Every library's gradient of the chain is checked against the product of the factors first."""
    rng = np.random.default_rng(0)
    a = rng.standard_normal(CHAIN_SHAPE).astype(np.float32)
    c = rng.uniform(0.999, 1.001, CHAIN_SHAPE).astype(np.float32)  # the chain stays near a
    expected = c.astype(np.float64) ** n
    found = {}
    for impl in impls:
        if getattr(impl, "chain", None) is None:
            continue
        g = np.asarray(impl.chain(a, c, n), dtype=np.float64)
        err = float(np.abs(g - expected).max() / np.abs(expected).max())
        if err > 1e-4:
            raise AssertionError(f"{impl.name}: the chain's gradient is off by {err:.1e} of its size")
        best = best_wall = math.inf
        for _ in range(repeats):
            t0, c0 = time.perf_counter(), time.process_time()
            impl.chain(a, c, n)
            best = min(best, time.process_time() - c0)
            best_wall = min(best_wall, time.perf_counter() - t0)
        found[impl.name] = {"cpu_us": 1e6 * best / n, "wall_us": 1e6 * best_wall / n}
    return found


class ProcessCPU:
    """An implementation whose steps also record the CPU time of the whole process (all threads):
    JAX runs its computations on XLA's threads, where bench.py's per-thread CPU time misses them."""

    def __init__(self, impl):
        self.impl, self.name, self.cpu = impl, impl.name, []

    def reset(self):
        self.impl.reset()

    def step(self):
        c0 = time.process_time()
        self.impl.step()
        self.cpu.append(time.process_time() - c0)


# ---- the run ----------------------------------------------------------------------------------------------


def run(configs, steps=20, chain=300, peers=PEERS, out=print) -> dict:
    """Check, time and print every config, then the per-op costs; returns every figure as a dict."""
    result = {
        "machine": bench.machine_info(1, "threadpoolctl, torch.set_num_threads, XLA_FLAGS", None),
        "uptime_loadavg": os.getloadavg() if hasattr(os, "getloadavg") else None,
        "configs": {},
    }
    out(
        f"peers: one vanilla RNN training step (forward + backward + SGD), float32, one thread; "
        f"{result['machine']['cpu']}, {result['machine']['logical_cpus']} logical CPUs"
        + (f"; load average at start {result['uptime_loadavg'][0]:.2f}" if result["uptime_loadavg"] else "")
    )
    impls = None
    for cfg in configs:
        p = bench.make_problem(*CONFIGS[cfg])
        impls = make_impls(p, peers, out=out if impls is None else (lambda line: None))
        worst = bench.check_agreement(impls)
        timed = [ProcessCPU(impl) for impl in impls]
        times, _, load = bench.time_steps(timed, steps, sync=lambda: None)
        cpu = {t.name: t.cpu[-len(times[t.name]) :] for t in timed}  # the timed steps, not the warm-up
        med = {k: statistics.median(v) for k, v in times.items()}
        row = {
            "shape": dict(zip("BTEHC", CONFIGS[cfg])),
            "agreement_worst_rel_error": worst,
            "load": load,
            "times": {k: bench.stats(v) for k, v in times.items()},
            "cpu_times": {k: bench.stats(v) for k, v in cpu.items()},
            "over_ours": {k: med[k] / med[Ours.name] for k in med},
        }
        cpu_med = {k: v["median_ms"] for k, v in row["cpu_times"].items()}
        row["cpu_over_ours"] = {k: cpu_med[k] / cpu_med[Ours.name] for k in cpu_med}
        result["configs"][cfg] = row
        out(
            f"\n{cfg} {CONFIGS[cfg]} (B, T, E, H, C): all agree with tinygrad_rnn to {worst:.1e} rel; "
            f"{row['times'][Ours.name]['steps']} steps each; {bench._load_note(load)}"
        )
        out(f"{'':<16}{'ms per step (IQR)':>26}{'÷ ours':>9}{'CPU ms':>9}{'÷ ours':>9}")
        for name in sorted(med, key=med.get):
            out(
                f"{name:<16}{bench._fmt(row['times'][name]):>26}{row['over_ours'][name]:>9.2f}"
                f"{cpu_med[name]:>9.2f}{row['cpu_over_ours'][name]:>9.2f}"
            )
    if chain and impls:
        ops = per_op(impls, chain)
        result["per_op_us"] = ops
        out(
            f"\ncost per op: a chain of {chain} products of {CHAIN_SHAPE} float32 arrays, "
            "forward + backward, µs per product (best of 3)"
        )
        out(f"{'':<16}{'CPU µs':>9}{'÷ ours':>9}{'wall µs':>9}")
        for name in sorted(ops, key=lambda k: ops[k]["cpu_us"]):
            out(
                f"{name:<16}{ops[name]['cpu_us']:>9.2f}{ops[name]['cpu_us'] / ops[Ours.name]['cpu_us']:>9.2f}"
                f"{ops[name]['wall_us']:>9.2f}"
            )
    return result


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    parser = argparse.ArgumentParser(prog="python benchmarks/peers.py", description=__doc__.split("\n")[0])
    parser.add_argument(
        "--configs", default="small,medium", help=f"comma-separated, from {', '.join(CONFIGS)}"
    )
    parser.add_argument("--steps", type=int, default=20, help="timed steps per library (at least 20)")
    parser.add_argument("--chain", type=int, default=300, help="products in the per-op chain (0: skip)")
    parser.add_argument("--json", help="also write every figure to this file")
    args = parser.parse_args(argv)
    configs = [c.strip() for c in args.configs.split(",") if c.strip()]
    unknown = [c for c in configs if c not in CONFIGS]
    if unknown:
        parser.error(f"unknown config(s) {', '.join(unknown)}; choose from {', '.join(CONFIGS)}")
    if args.steps < 20:
        parser.error("--steps must be at least 20 (a median of fewer steps says little on a shared machine)")
    if args.chain < 0:
        parser.error("--chain must be 0 or more")
    print(set_blas_threads(1))
    print(f"malloc thresholds: {'raised (tune_malloc)' if tune_malloc() else 'as the C library sets them'}")
    result = run(configs, steps=args.steps, chain=args.chain)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=1, default=str)
    return result


if __name__ == "__main__":
    main()
