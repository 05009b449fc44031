"""How fast is autograd BPTT? One training step of an RNN classifier against hand-written NumPy and PyTorch.

``python benchmarks/bench.py [--cell rnn|lstm|gru] [--device cpu|cuda] [--configs small,medium,large,adding]
[--threads N] [--steps N] [--json FILE]`` (``make bench`` runs it with ``--threads 1``;
``make bench BENCH_ARGS="--cell lstm"`` times the LSTM, ``--cell gru`` the GRU).

The step, float32, row-vector convention as in the chapter (docs/chapter.md)::

    h_t = tanh(x_t W + h_{t-1} V + b),  t = 1..T,  h_0 = 0
    logits = h_T U + c,  L = mean_i −log softmax(logits_i)[y_i],  then SGD: θ ← θ − lr ∂L/∂θ

With ``--cell lstm`` or ``--cell gru`` the recurrence is that of ``nn.LSTM`` / ``nn.GRU``
(equations in tinygrad_rnn/nn/cells.py), the head and the loss the same.

Four implementations run on the same data and the same initial weights, in one process:

* **numpy BPTT** — hand-derived backprop through time, no graph at all: the vectorised form in
  :mod:`tinygrad_rnn.bptt.reference` (the input projection of all steps is one matmul, each step
  writes into preallocated buffers, and dW, dV, db are one matmul each over all steps). The
  fastest honest NumPy: the floor for any NumPy autograd.
* **autograd** — tinygrad_rnn's public API: ``nn.RNN`` + ``nn.Linear`` +
  ``nn.functional.cross_entropy`` + ``optim.SGD``; ``loss.backward()`` walks the unrolled graph.
* **torch nn.RNN** (nn.LSTM, nn.GRU) — PyTorch's fused kernel (only when torch is installed).
* **torch loop** — PyTorch running the same Python loop over time as our ``nn.RNN``.

Before timing, every implementation must agree with the NumPy reference on the loss and on all
five gradients. Timing then alternates between implementations in blocks after a warm-up, with
BLAS and torch limited to the same number of threads, and reports the median step with its
spread and how busy the rest of the machine was meanwhile (on a shared machine that decides how
far the numbers can be trusted). Then: cost against T, peak memory of a step, and the engine's
fixed cost per op.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import json
import math
import os
import platform
import statistics
import sys
import time
import tracemalloc
from dataclasses import dataclass

import numpy as np

from tinygrad_rnn import nn, optim
from tinygrad_rnn.backend import get_backend
from tinygrad_rnn.tensor import Tensor, no_grad, textbook_backward
from tinygrad_rnn.threads import tune_malloc

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # numpy_bptt.py, beside this file
from numpy_bptt import (  # noqa: E402
    gru_bptt_vectorised,
    gru_forward_vectorised,
    lstm_bptt_vectorised,
    lstm_forward_vectorised,
    rnn_bptt_vectorised,
    rnn_forward_vectorised,
)

CONFIGS = {  # name: (B, T, E, H, C)
    "small": (16, 20, 32, 64, 5),
    "medium": (64, 50, 64, 128, 10),
    "large": (128, 100, 128, 256, 10),
    # the shape of `bptt experiment --cells` at T = 200 (E = 2: value and marker; the head here is
    # a classifier's, as for the others): what its time is made of. Not in the default list.
    "adding": (64, 200, 2, 64, 10),
}
TARGET_CONFIGS = ("small", "medium", "large")  # the configs the targets below are set for
T_SCALING = (50, 100, 200, 400, 800)  # at medium's B, E, H, C
LR = 0.05
GRAD_NAMES = ("W", "V", "b", "U", "c")  # the vanilla and LSTM cells; GRU adds b_hn
CELLS = {"rnn": 1, "lstm": 4, "gru": 3}  # cell: gate blocks G (W is (E, G·H))


def grad_names(cell: str) -> tuple:
    return ("W", "V", "b", "b_hn", "U", "c") if cell == "gru" else GRAD_NAMES


# ---- threads ------------------------------------------------------------------------------------

_THREAD_ENV = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "BLIS_NUM_THREADS")
_REEXEC_FLAG = "TINYGRAD_RNN_BENCH_REEXEC"


def limit_threads(n: int, argv) -> str:
    """Run BLAS (and torch) with ``n`` threads; returns how it was done.

    NumPy's BLAS reads its thread count when it is loaded, and ``tinygrad_rnn`` has loaded NumPy
    before this module runs, so setting environment variables now would be too late. With
    threadpoolctl the running BLAS is told directly; without it the benchmark re-executes itself
    once with the variables set, before NumPy is imported again.
    """
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        if all(os.environ.get(k) == str(n) for k in _THREAD_ENV):
            return "environment variables (set before NumPy was loaded)"
        if os.environ.get(_REEXEC_FLAG):
            return "environment variables (re-exec did not take effect)"
        env = dict(os.environ, **{k: str(n) for k in _THREAD_ENV}, **{_REEXEC_FLAG: "1"})
        os.execve(sys.executable, [sys.executable, os.path.abspath(__file__), *argv], env)
    global _thread_limit  # keep the limiter alive for the whole run
    _thread_limit = threadpool_limits(limits=n)
    return "threadpoolctl"


def blas_threads() -> str:
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return "unknown (threadpoolctl not installed)"
    return (
        ", ".join(
            f"{i['internal_api']} {i.get('version') or ''}: {i['num_threads']}" for i in threadpool_info()
        )
        or "none found"
    )


def import_torch(threads: int):
    """PyTorch limited to ``threads`` threads, or None when it is not installed."""
    try:
        import torch
    except ImportError:
        return None
    torch.set_num_threads(threads)
    try:
        torch.set_num_interop_threads(1)
    except RuntimeError:  # already set (only possible once per process)
        pass
    return torch


def freeze_startup_objects() -> int:
    """Put every object alive now into the cyclic garbage collector's permanent generation
    (``gc.freeze``); returns how many there are.

    Python's collector makes a full pass over every object it tracks each time the objects that
    survived its younger passes have grown by a quarter. Our recorded graph is Python objects (an
    op, its input lists, its output tensors: 10,500 for an LSTM step at the adding shape, 13,700
    for a GRU step), and with torch imported the process holds about 170,000 more, which a full
    pass walks too (a process without torch, such as the command line, holds about 23,000).
    ``--gc-freeze`` takes those out of the passes, to measure whether they cost our steps
    anything here (docs/performance.md, "The floor": not measurably, in this benchmark).
    """
    gc.collect()
    gc.freeze()
    return gc.get_freeze_count()


@contextlib.contextmanager
def flush_subnormals(torch, device: str):
    """Treat float32 subnormals as zero on this thread (the CPU's FTZ/DAZ flags) where possible.

    Why the T-scaling needs it: the loss reads h_T only, so δ_t shrinks at every step back in
    time (the vanishing gradient), and beyond T ≈ 150 a band of steps has δ in float32's
    subnormal range (1e-38 … 1e-45), where each x86 multiply takes a microcode assist of ~100
    cycles. That band costs every implementation a fixed ~150 ms per step at medium, swamping the
    linear cost the scaling table is about. NumPy cannot set the flags; ``torch.set_flush_denormal``
    sets them for the calling thread, which runs NumPy's loops and single-threaded BLAS too.
    Yields whether the flags are set.
    """
    on = torch is not None and device == "cpu" and torch.set_flush_denormal(True)
    try:
        yield bool(on)
    finally:
        if on:
            torch.set_flush_denormal(False)


# ---- the problem: data and initial weights, drawn once on the host --------------------------------


@dataclass
class Problem:
    B: int
    T: int
    E: int
    H: int
    C: int
    x: np.ndarray  # (B, T, E) float32
    y: np.ndarray  # (B,) int64 class ids
    W: np.ndarray  # (E, G·H)
    V: np.ndarray  # (H, G·H)
    b: np.ndarray  # (G·H,)
    U: np.ndarray  # (H, C)
    c: np.ndarray  # (C,)
    cell: str = "rnn"
    b_hn: np.ndarray = None  # (H,), GRU only

    @property
    def names(self) -> tuple:
        return grad_names(self.cell)

    def weights(self) -> dict:
        return {name: getattr(self, name) for name in self.names}


def make_problem(B, T, E, H, C, seed=0, cell="rnn") -> Problem:
    """Random inputs and U(−1/√H, 1/√H) weights (PyTorch's init for all three cells), float32."""
    rng = np.random.default_rng(seed)
    k = 1 / math.sqrt(H)
    G = CELLS[cell]

    def u(*shape):
        return rng.uniform(-k, k, shape).astype(np.float32)

    p = Problem(
        B,
        T,
        E,
        H,
        C,
        rng.standard_normal((B, T, E)).astype(np.float32),
        rng.integers(0, C, B),
        u(E, G * H),
        u(H, G * H),
        u(G * H),
        u(H, C),
        u(C),
        cell,
    )
    if cell == "gru":
        p.b_hn = u(H)
    return p


# ---- (a) hand-derived BPTT in plain NumPy (or CuPy) --------------------------------------------------


def classifier_head(xp, hT, y, U, c):
    """Loss and (dU, dc, ∂L/∂h_T) of logits = h_T U + c, L = mean_i −log softmax(logits_i)[y_i]:

    ∂L/∂logits = (softmax(logits) − onehot(y)) / B,   ∂L/∂h_T = ∂L/∂logits Uᵀ.
    """
    B = hT.shape[0]
    logits = hT @ U + c
    z = logits - logits.max(axis=1, keepdims=True)
    logp = z - xp.log(xp.exp(z).sum(axis=1, keepdims=True))
    rows = xp.arange(B)
    loss = -logp[rows, y].mean()
    dlogits = xp.exp(logp)  # softmax − onehot, over B for the mean
    dlogits[rows, y] -= 1
    dlogits /= B
    return loss, hT.T @ dlogits, dlogits.sum(axis=0), dlogits @ U.T


def numpy_bptt(xp, x, y, W, V, b, U, c):
    """Loss and (dW, dV, db, dU, dc) by hand: :func:`classifier_head` on h_T, then the vectorised
    sweep of :func:`tinygrad_rnn.bptt.reference.rnn_bptt_vectorised`."""
    hs = rnn_forward_vectorised(xp, x, W, V, b)
    loss, dU, dc, dh = classifier_head(xp, hs[-1], y, U, c)
    dW, dV, db, _ = rnn_bptt_vectorised(xp, x, V, hs, dh)
    return loss, (dW, dV, db, dU, dc)


def numpy_lstm_bptt(xp, x, y, W, V, b, U, c):
    """The same for the LSTM: :func:`tinygrad_rnn.bptt.reference.lstm_bptt_vectorised`."""
    hs, cs, gates, tanh_c = lstm_forward_vectorised(xp, x, W, V, b)
    loss, dU, dc, dh = classifier_head(xp, hs[-1], y, U, c)
    dW, dV, db, _, _ = lstm_bptt_vectorised(xp, x, V, hs, cs, gates, tanh_c, dh)
    return loss, (dW, dV, db, dU, dc)


def numpy_gru_bptt(xp, x, y, W, V, b, b_hn, U, c):
    """The same for the GRU: :func:`tinygrad_rnn.bptt.reference.gru_bptt_vectorised`."""
    hs, gates, hn = gru_forward_vectorised(xp, x, W, V, b, b_hn)
    loss, dU, dc, dh = classifier_head(xp, hs[-1], y, U, c)
    dW, dV, db, db_hn, _ = gru_bptt_vectorised(xp, x, V, hs, gates, hn, dh)
    return loss, (dW, dV, db, db_hn, dU, dc)


NUMPY_STEP = {"rnn": numpy_bptt, "lstm": numpy_lstm_bptt, "gru": numpy_gru_bptt}


class NumpyBPTT:
    name = "numpy BPTT"

    def __init__(self, p: Problem, device: str):
        self.backend = get_backend(device)
        self.xp = self.backend.xp
        self.names, self.fn = p.names, NUMPY_STEP[p.cell]
        self.x, self.y = self.backend.asarray(p.x), self.backend.asarray(p.y)
        self.initial = [self.backend.asarray(w.copy()) for w in p.weights().values()]  # never shared
        self.params = [w.copy() for w in self.initial]

    def reset(self):
        for w, w0 in zip(self.params, self.initial):
            w[...] = w0

    def loss_and_grads(self):
        loss, grads = self.fn(self.xp, self.x, self.y, *self.params)
        return float(self.backend.to_host(loss)), {
            n: self.backend.to_host(g) for n, g in zip(self.names, grads)
        }

    def step(self):
        _, grads = self.fn(self.xp, self.x, self.y, *self.params)
        for w, g in zip(self.params, grads):
            w -= LR * g


# ---- (b) tinygrad_rnn autograd, through the public API ------------------------------------------------

LAYERS = {"rnn": nn.RNN, "lstm": nn.LSTM, "gru": nn.GRU}


class Autograd:
    name = "autograd"

    def __init__(self, p: Problem, device: str):
        self.cell_kind, self.names = p.cell, p.names
        self.rnn = LAYERS[p.cell](p.E, p.H, device=device)
        self.head = nn.Linear(p.H, p.C, device=device)
        cell = self.rnn.cells[0]
        self.named = {n: getattr(cell, n) for n in p.names if n not in ("U", "c")}
        self.named.update(U=self.head.W, c=self.head.b)
        for name, w in p.weights().items():
            self.named[name].data = w.copy()  # .data keeps the array itself: SGD would change p
        self.initial = {name: w.data.copy() for name, w in self.named.items()}
        self.x, self.y = Tensor(p.x, device=device), Tensor(p.y, device=device)
        self.opt = optim.SGD(list(self.named.values()), lr=LR)

    def reset(self):
        for name, w in self.named.items():
            w.data[...] = self.initial[name]

    def loss(self):
        _, last = self.rnn(self.x, need_outputs=False)  # (layers, B, H), or (h, c) for the LSTM
        h_last = last[0] if self.cell_kind == "lstm" else last
        return nn.functional.cross_entropy(self.head(h_last[-1]), self.y)

    def loss_and_grads(self):
        self.opt.zero_grad()
        loss = self.loss()
        loss.backward()
        return loss.item(), {n: w.backend.to_host(w.grad) for n, w in self.named.items()}

    def step(self):
        self.opt.zero_grad()
        self.loss().backward()
        self.opt.step()


# ---- (c) PyTorch: the fused nn.RNN / nn.LSTM / nn.GRU, and the same Python loop over time as ours ----


class TorchRNN:
    """PyTorch's fused layer with our weights: weight_ih = Wᵀ, weight_hh = Vᵀ, bias_ih = b and
    bias_hh = 0, frozen (one bias, as in our cells) — except the GRU's n block of bias_hh, which
    is our b_hn (only that block is trained)."""

    def __init__(self, p: Problem, device: str, torch):
        self.torch, self.cell_kind, self.H = torch, p.cell, p.H
        self.name = {"rnn": "torch nn.RNN", "lstm": "torch nn.LSTM", "gru": "torch nn.GRU"}[p.cell]
        dev = "cuda" if device == "cuda" else "cpu"
        layer = {"rnn": torch.nn.RNN, "lstm": torch.nn.LSTM, "gru": torch.nn.GRU}[p.cell]
        self.rnn = layer(p.E, p.H, batch_first=True).to(dev)
        self.head = torch.nn.Linear(p.H, p.C).to(dev)
        r = self.rnn
        with torch.no_grad():  # PyTorch stores W, V, U transposed
            r.weight_ih_l0.copy_(torch.from_numpy(p.W.T.copy()))
            r.weight_hh_l0.copy_(torch.from_numpy(p.V.T.copy()))
            r.bias_ih_l0.copy_(torch.from_numpy(p.b))
            r.bias_hh_l0.zero_()
            if p.cell == "gru":
                r.bias_hh_l0[2 * p.H :] = torch.from_numpy(p.b_hn)
            self.head.weight.copy_(torch.from_numpy(p.U.T.copy()))
            self.head.bias.copy_(torch.from_numpy(p.c))
        r.bias_hh_l0.requires_grad_(p.cell == "gru")
        self.x, self.y = torch.from_numpy(p.x).to(dev), torch.from_numpy(p.y).to(dev)
        self.params = [q for q in [*r.parameters(), *self.head.parameters()] if q.requires_grad]
        self.initial = [q.detach().clone() for q in self.params]
        self.opt = torch.optim.SGD(self.params, lr=LR)

    def reset(self):
        with self.torch.no_grad():
            for q, q0 in zip(self.params, self.initial):
                q.copy_(q0)

    def loss(self):
        _, last = self.rnn(self.x)
        h_last = last[0] if self.cell_kind == "lstm" else last
        return self.torch.nn.functional.cross_entropy(self.head(h_last[-1]), self.y)

    def backward(self):
        self.opt.zero_grad()
        loss = self.loss()
        loss.backward()
        if self.cell_kind == "gru":  # only the n block of bias_hh is our b_hn
            self.rnn.bias_hh_l0.grad[: 2 * self.H] = 0
        return loss

    def loss_and_grads(self):
        loss = self.backward()
        r = self.rnn
        g = {
            "W": r.weight_ih_l0.grad.T,
            "V": r.weight_hh_l0.grad.T,
            "b": r.bias_ih_l0.grad,
            "U": self.head.weight.grad.T,
            "c": self.head.bias.grad,
        }
        if self.cell_kind == "gru":
            g["b_hn"] = r.bias_hh_l0.grad[2 * self.H :]
        return loss.item(), {n: t.detach().cpu().numpy() for n, t in g.items()}

    def step(self):
        self.backward()
        self.opt.step()


class TorchLoop(TorchRNN):
    """PyTorch autograd over the very op sequence our layer records: one input projection
    ``addmm(b, X, W)``, unbind over time, then the cell's step per time step (vanilla:
    ``tanh(addmm(xW_t, h, V))``; LSTM and GRU: nn/cells.py's ops, one for one)."""

    name = "torch loop"

    def __init__(self, p: Problem, device: str, torch):
        self.torch, self.cell_kind, self.H = torch, p.cell, p.H
        dev = "cuda" if device == "cuda" else "cpu"
        self.names = p.names
        self.params = [torch.tensor(w, device=dev, requires_grad=True) for w in p.weights().values()]
        self.initial = [q.detach().clone() for q in self.params]
        self.x, self.y = torch.from_numpy(p.x).to(dev), torch.from_numpy(p.y).to(dev)
        self.opt = torch.optim.SGD(self.params, lr=LR)

    def loss(self):
        torch = self.torch
        named = dict(zip(self.names, self.params))
        W, V, b = named["W"], named["V"], named["b"]
        B, T, E = self.x.shape
        H = self.H
        xw = torch.addmm(b, self.x.reshape(B * T, E), W).reshape(B, T, -1)
        h = torch.zeros(B, H, dtype=xw.dtype, device=xw.device)
        c = torch.zeros_like(h)
        for xw_t in xw.unbind(1):
            if self.cell_kind == "rnn":
                h = torch.tanh(torch.addmm(xw_t, h, V))
            elif self.cell_kind == "lstm":
                i, f, g, o = torch.addmm(xw_t, h, V).split(H, dim=1)
                i, f, g, o = i.sigmoid(), f.sigmoid(), g.tanh(), o.sigmoid()
                c = f * c + i * g
                h = o * c.tanh()
            else:
                x_r, x_z, x_n = xw_t.split(H, dim=1)
                h_r, h_z, h_n = (h @ V).split(H, dim=1)
                r, z = (x_r + h_r).sigmoid(), (x_z + h_z).sigmoid()
                n = (x_n + r * (h_n + named["b_hn"])).tanh()
                h = n + z * (h - n)
        return torch.nn.functional.cross_entropy(h @ named["U"] + named["c"], self.y)

    def backward(self):
        self.opt.zero_grad()
        loss = self.loss()
        loss.backward()
        return loss

    def loss_and_grads(self):
        loss = self.backward()
        return loss.item(), {n: w.grad.detach().cpu().numpy() for n, w in zip(self.names, self.params)}


def make_impls(p: Problem, device: str, torch, with_torch=True) -> list:
    impls = [NumpyBPTT(p, device), Autograd(p, device)]
    if torch is not None and with_torch and (device == "cpu" or torch.cuda.is_available()):
        impls += [TorchRNN(p, device, torch), TorchLoop(p, device, torch)]
    return impls


def check_agreement(impls, rtol=2e-4) -> float:
    """Every implementation's loss and gradients equal the reference's (float32 tolerance).

    The error of each gradient is measured against its largest entry, so tiny entries are not
    held to an impossible relative standard. Returns the worst relative error seen.
    """
    ref_loss, ref_grads = impls[0].loss_and_grads()
    worst = 0.0
    for impl in impls[1:]:
        loss, grads = impl.loss_and_grads()
        err = abs(loss - ref_loss) / abs(ref_loss)
        if err > rtol:
            raise AssertionError(f"{impl.name}: loss {loss!r} != {impls[0].name} loss {ref_loss!r}")
        worst = max(worst, err)
        for n in ref_grads:
            scale = float(np.abs(ref_grads[n]).max()) or 1.0
            diff = np.abs(np.asarray(grads[n]) - ref_grads[n])
            err = float(diff.max()) / scale
            if err > rtol:
                i = np.unravel_index(int(diff.argmax()), diff.shape)
                raise AssertionError(
                    f"{impl.name}: dL/d{n} differs from {impls[0].name} at {i}: {grads[n][i]!r} vs "
                    f"{ref_grads[n][i]!r} (error {err:.2e} of max |dL/d{n}| = {scale:.3e})"
                )
            worst = max(worst, err)
    return worst


# ---- timing, with a measure of everyone else's CPU use ----------------------------------------------


class CpuMeter:
    """CPU seconds used by other processes while timing: all CPUs' busy time (/proc/stat) minus
    this process's own CPU time. Falls back to the 1-minute load average where /proc is absent."""

    def __init__(self):
        self.wall = self.own = self.other = 0.0
        self.has_proc = os.path.exists("/proc/stat")
        self.tick = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100

    def _busy(self):
        with open("/proc/stat") as f:
            fields = [int(v) for v in f.readline().split()[1:]]
        idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
        return (sum(fields[:8]) - idle) / self.tick

    def __enter__(self):
        t = os.times()
        self._start = (time.perf_counter(), t.user + t.system, self._busy() if self.has_proc else 0.0)
        return self

    def __exit__(self, *exc):
        t = os.times()
        wall, own = time.perf_counter() - self._start[0], t.user + t.system - self._start[1]
        self.wall += wall
        self.own += own
        if self.has_proc:
            self.other += max(0.0, self._busy() - self._start[2] - own)

    def summary(self) -> dict:
        other = self.other / self.wall if self.has_proc and self.wall else None
        return {
            "other_cores_busy": other,
            "own_cpu_per_wall": self.own / self.wall if self.wall else None,
            "loadavg_1min": os.getloadavg()[0] if hasattr(os, "getloadavg") else None,
        }


def time_steps(impls, steps: int, sync, block: int = 5, warmup: int = 3) -> tuple[dict, dict, dict]:
    """Per-step times (seconds) of each implementation, in alternating blocks after warm-up.

    Returns ``(wall, cpu, load)``: wall-clock times, the CPU time of this thread per step
    (``time.thread_time``: with one BLAS thread all the step's work on the CPU runs here, and
    other processes do not add to it — on a busy shared machine the steadier comparison), and
    the load summary.

    Every round runs a block of ``block`` steps of each implementation, the order rotating from
    round to round, so slow drifts of the machine hit all of them alike. Fast configurations get
    more steps (at least ``steps``, about 0.3 s per implementation).

    Each block starts from the initial weights (``reset``, untimed): hundreds of SGD steps on one
    batch would drive the loss towards 0 and the backward signal into float32's subnormal
    range, where x86 arithmetic is 10–100× slower — the work per step would drift, and differ
    between implementations at different points of their training.
    """
    estimate = {}
    for impl in impls:
        impl.reset()
        t0 = time.perf_counter()
        for _ in range(warmup):
            impl.step()
        sync()
        estimate[impl.name] = (time.perf_counter() - t0) / warmup
    n = min(500, max(steps, math.ceil(0.3 / max(estimate.values()))))
    rounds = math.ceil(n / block)
    times = {impl.name: [] for impl in impls}
    cpu = {impl.name: [] for impl in impls}
    meter = CpuMeter()
    for r in range(rounds):
        order = impls[r % len(impls) :] + impls[: r % len(impls)]
        for impl in order:
            impl.reset()
            sync()
            with meter:
                for _ in range(block):
                    sync()
                    t0, c0 = time.perf_counter(), time.thread_time()
                    impl.step()
                    sync()
                    times[impl.name].append(time.perf_counter() - t0)
                    cpu[impl.name].append(time.thread_time() - c0)
    return times, cpu, meter.summary()


def stats(ts) -> dict:
    q = statistics.quantiles(ts, n=4)
    return {
        "median_ms": 1e3 * statistics.median(ts),
        "q1_ms": 1e3 * q[0],
        "q3_ms": 1e3 * q[2],
        "min_ms": 1e3 * min(ts),
        "steps": len(ts),
    }


# ---- peak memory and per-op overhead -----------------------------------------------------------------


def peak_memory(impl) -> int:
    """Peak bytes allocated during one step, above what was allocated before it (tracemalloc sees
    NumPy's buffers and the graph's Python objects)."""
    impl.step()  # allocate lazily created state first
    tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        tracemalloc.reset_peak()
        impl.step()
        return tracemalloc.get_traced_memory()[1] - base
    finally:
        tracemalloc.stop()


def op_overhead(device: str, torch, sync, n_forward=20000, n_chain=2000) -> dict:
    """Microseconds per tiny op (1-element float32 add): recorded forward, forward under no_grad,
    backward per op of a chain, and NumPy's own ``a + b`` for scale; PyTorch's where installed."""

    def per_op(fn, n):
        best = math.inf
        for _ in range(3):
            sync()
            t0 = time.perf_counter()
            fn()
            sync()
            best = min(best, time.perf_counter() - t0)
        return 1e6 * best / n

    xp = get_backend(device).xp
    a = Tensor(xp.ones(1, dtype=np.float32), requires_grad=True, device=device)
    c = Tensor(xp.ones(1, dtype=np.float32), device=device)

    def forward():
        for _ in range(n_forward):
            a + c

    def forward_no_grad():
        with no_grad():
            for _ in range(n_forward):
                a + c

    def chain_backward():
        y = a
        for _ in range(n_chain):
            y = y + c
        t0 = time.perf_counter()
        y.sum().backward()
        sync()
        chain_backward.elapsed = time.perf_counter() - t0

    def backward_only():
        chain_backward()
        a.grad = None
        return chain_backward.elapsed

    raw_a, raw_c = a.data, c.data

    def numpy_add():
        for _ in range(n_forward):
            raw_a + raw_c

    out = {
        "autograd_forward_us": per_op(forward, n_forward),
        "autograd_forward_no_grad_us": per_op(forward_no_grad, n_forward),
        "autograd_backward_us": 1e6 * min(backward_only() for _ in range(3)) / n_chain,
        "array_add_us": per_op(numpy_add, n_forward),
    }
    out.update(multiply_chain(device, torch, sync, n_chain))
    if torch is not None and (device == "cpu" or torch.cuda.is_available()):
        ta = torch.ones(1, requires_grad=True, device="cuda" if device == "cuda" else "cpu")
        tc = torch.ones(1, device=ta.device)

        def torch_forward():
            for _ in range(n_forward):
                ta + tc

        def torch_backward():
            y = ta
            for _ in range(n_chain):
                y = y + tc
            t0 = time.perf_counter()
            y.sum().backward()
            sync()
            ta.grad = None
            return time.perf_counter() - t0

        out["torch_forward_us"] = per_op(torch_forward, n_forward)
        out["torch_backward_us"] = 1e6 * min(torch_backward() for _ in range(3)) / n_chain
    return out


def multiply_chain(device: str, torch, sync, n: int = 2000) -> dict:
    """Microseconds per op, forward + backward, of a chain y ← y ⊙ c of (64, 64) float32 arrays
    (the per-op target): the best of three chains of ``n`` ops, recorded and walked back; the
    same in PyTorch where installed. Unlike the 1-element add it includes each op's array work
    and the memory the graph keeps (every ⊙ saves its inputs)."""
    rng = np.random.default_rng(0)
    a0 = rng.standard_normal((64, 64)).astype(np.float32)
    c0 = np.full((64, 64), 1.0001, dtype=np.float32)
    backend = get_backend(device)

    def ours():
        a = Tensor(backend.asarray(a0), requires_grad=True, device=device)
        c = Tensor(backend.asarray(c0), device=device)
        sync()
        t0 = time.perf_counter()
        y = a
        for _ in range(n):
            y = y * c
        y.sum().backward()
        sync()
        return time.perf_counter() - t0

    out = {"mul64_fwd_bwd_us": 1e6 * min(ours() for _ in range(3)) / n}
    if torch is not None and (device == "cpu" or torch.cuda.is_available()):
        dev = "cuda" if device == "cuda" else "cpu"

        def theirs():
            a = torch.tensor(a0, requires_grad=True, device=dev)
            c = torch.tensor(c0, device=dev)
            sync()
            t0 = time.perf_counter()
            y = a
            for _ in range(n):
                y = y * c
            y.sum().backward()
            sync()
            return time.perf_counter() - t0

        out["torch_mul64_fwd_bwd_us"] = 1e6 * min(theirs() for _ in range(3)) / n
    return out


# ---- the report -----------------------------------------------------------------------------------


def machine_info(threads: int, how: str, torch) -> dict:
    model = platform.processor()
    try:
        with open("/proc/cpuinfo") as f:
            model = next((ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name")), model)
    except OSError:
        pass
    return {
        "cpu": model,
        "logical_cpus": os.cpu_count(),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "torch": getattr(torch, "__version__", None),
        "threads": threads,
        "thread_control": how,
        "blas_threads": blas_threads(),
    }


def _fmt(s) -> str:
    return f"{s['median_ms']:8.2f} ({s['q1_ms']:.2f}–{s['q3_ms']:.2f})"


def _load_note(load) -> str:
    other = load["other_cores_busy"]
    text = f"other processes busy {other:.2f} cores" if other is not None else "other-process load unknown"
    return f"{text}, own CPU/wall {load['own_cpu_per_wall']:.2f}, loadavg {load['loadavg_1min']:.2f}"


def run(
    configs,
    device="cpu",
    threads=1,
    steps=20,
    t_scaling=True,
    memory=True,
    overhead=True,
    torch=None,
    how="",
    out=print,
    flush=True,
    cell="rnn",
) -> dict:
    """Run the benchmark for one cell type, print the tables, and return every figure as a dict.
    (The T-scaling table is for the vanilla cell only.)"""
    backend = get_backend(device)
    sync = backend.synchronize
    result = {"device": device, "cell": cell, "machine": machine_info(threads, how, torch), "configs": {}}
    m = result["machine"]
    out(
        f"tinygrad_rnn benchmark — device {device}, {m['cpu']}, {m['logical_cpus']} logical CPUs, "
        f"{threads} thread(s) [{m['thread_control']}; BLAS: {m['blas_threads']}], numpy {m['numpy']}, "
        f"torch {m['torch'] or 'not installed'}"
    )
    out(
        f"cell {cell}: one training step (forward + backward + SGD), float32; "
        "median ms (interquartile range)\n"
    )
    names = None
    for cfg_name in configs:
        p = make_problem(*CONFIGS[cfg_name], cell=cell)
        impls = make_impls(p, device, torch)
        worst = check_agreement(impls)
        times, cpu, load = time_steps(impls, steps, sync)
        row = {
            "shape": dict(zip("BTEHC", CONFIGS[cfg_name])),
            "agreement_worst_rel_error": worst,
            "load": load,
            "times": {k: stats(v) for k, v in times.items()},
            "cpu_times": {k: stats(v) for k, v in cpu.items()},
        }
        med = {k: v["median_ms"] for k, v in row["times"].items()}
        row["ratios"] = {f"autograd / {k}": med["autograd"] / med[k] for k in med if k != "autograd"}
        med = {k: v["median_ms"] for k, v in row["cpu_times"].items()}
        row["cpu_ratios"] = {f"autograd / {k}": med["autograd"] / med[k] for k in med if k != "autograd"}
        result["configs"][cfg_name] = row
        if names is None:
            names = [i.name for i in impls]
            out(
                f"{'config':<8}{'(B, T, E, H, C)':<22}"
                + "".join(f"{n:>24}" for n in names)
                + "   autograd ÷ "
                + " | ".join(n for n in names if n != "autograd")
            )
        out(
            f"{cfg_name:<8}{str(CONFIGS[cfg_name]):<22}"
            + "".join(f"{_fmt(row['times'][n]):>24}" for n in names)
            + "   "
            + " | ".join(f"{row['ratios'][f'autograd / {n}']:.2f}" for n in names if n != "autograd")
        )
        out(
            f"{'':<8}agree to {worst:.1e} rel; {row['times']['autograd']['steps']} steps each; "
            f"{_load_note(load)}"
        )
        if device == "cpu":
            out(
                f"{'':<8}CPU time of this thread per step, median ms: "
                + ", ".join(f"{n} {row['cpu_times'][n]['median_ms']:.2f}" for n in names)
                + "; autograd ÷ "
                + " | ".join(f"{row['cpu_ratios'][f'autograd / {n}']:.2f}" for n in names if n != "autograd")
            )

    if t_scaling and cell == "rnn":
        B, _, E, H, C = CONFIGS["medium"]
        out(f"\nT-scaling at medium (B={B}, E={E}, H={H}, C={C}): median ms per step")
        scaling = {}
        why = "--no-flush" if torch is not None and not flush else "needs torch"
        with flush_subnormals(torch if flush else None, device) as flushed:
            out(
                "subnormals flushed to zero (torch.set_flush_denormal)"
                if flushed
                else f"subnormals NOT flushed ({why}): beyond T ≈ 150 the vanishing δ_t passes through "
                "float32's subnormal range and every implementation pays a large fixed cost"
            )
            out(f"{'T':>6}{'numpy BPTT':>14}{'autograd':>14}{'ratio':>8}{'ms/T autograd':>16}")
            for T in T_SCALING:
                p = make_problem(B, T, E, H, C)
                impls = make_impls(p, device, torch, with_torch=False)
                check_agreement(impls, rtol=1e-3)  # float32 over up to 800 steps
                times, _, load = time_steps(impls, steps, sync)
                med = {k: statistics.median(v) * 1e3 for k, v in times.items()}
                scaling[T] = {
                    "numpy_bptt_ms": med["numpy BPTT"],
                    "autograd_ms": med["autograd"],
                    "load": load,
                }
                out(
                    f"{T:>6}{med['numpy BPTT']:>14.2f}{med['autograd']:>14.2f}"
                    f"{med['autograd'] / med['numpy BPTT']:>8.2f}{med['autograd'] / T:>16.3f}   "
                    f"{_load_note(load)}"
                )
        result["t_scaling"] = scaling
        result["t_scaling_subnormals_flushed"] = flushed
        if 100 in scaling and 800 in scaling:
            r = scaling[800]["autograd_ms"] / scaling[100]["autograd_ms"]
            rr = scaling[800]["numpy_bptt_ms"] / scaling[100]["numpy_bptt_ms"]
            result["t800_over_t100"] = {"autograd": r, "numpy BPTT": rr}
            out(f"time(T=800) / time(T=100): autograd {r:.2f}, numpy BPTT {rr:.2f} (8 = linear)")

    if memory and device == "cpu":
        out("\npeak memory of one step (tracemalloc, MiB)")
        out(f"{'config':<8}{'numpy BPTT':>12}{'autograd':>12}{'ratio':>8}")
        mem = {}
        for cfg_name in configs:
            p = make_problem(*CONFIGS[cfg_name], cell=cell)
            ref, ag = NumpyBPTT(p, device), Autograd(p, device)
            mem[cfg_name] = {"numpy_bptt_bytes": peak_memory(ref), "autograd_bytes": peak_memory(ag)}
            r = mem[cfg_name]["autograd_bytes"] / mem[cfg_name]["numpy_bptt_bytes"]
            mem[cfg_name]["ratio"] = r
            out(
                f"{cfg_name:<8}{mem[cfg_name]['numpy_bptt_bytes'] / 2**20:>12.2f}"
                f"{mem[cfg_name]['autograd_bytes'] / 2**20:>12.2f}{r:>8.2f}"
            )
        result["peak_memory"] = mem

    if overhead:
        ov = op_overhead(device, torch, sync)
        result["op_overhead"] = ov
        out(
            "\nper-op overhead (1-element add, µs per op): "
            f"autograd forward {ov['autograd_forward_us']:.2f} "
            f"(no_grad {ov['autograd_forward_no_grad_us']:.2f}), "
            f"backward {ov['autograd_backward_us']:.2f}; raw array add {ov['array_add_us']:.2f}"
            + (
                f"; torch forward {ov['torch_forward_us']:.2f}, backward {ov['torch_backward_us']:.2f}"
                if "torch_forward_us" in ov
                else ""
            )
        )
        out(
            "(64, 64) float32 multiply chain, forward + backward, µs per op: "
            f"autograd {ov['mul64_fwd_bwd_us']:.2f}"
            + (f", torch {ov['torch_mul64_fwd_bwd_us']:.2f}" if "torch_mul64_fwd_bwd_us" in ov else "")
        )

    result["targets"] = targets(result)
    if result["targets"]:
        out("\ntargets:")
        for t in result["targets"]:
            out(f"  [{'ok' if t['holds'] else 'MISSED'}] {t['what']}: {t['measured']}")
    return result


def targets(result) -> list:
    """The speed targets, checked against this run's ratios (wall clock; the CPU time of the
    benchmark's thread beside it, the steadier figure on a shared machine)."""
    found = []
    on_cpu = result["device"] == "cpu"

    def add(what, value, limit, fmt="{:.2f}", cpu=None):
        measured = fmt.format(value) + f" (limit {limit})"
        if cpu is not None:
            measured += f"; by CPU time of this thread {cpu:.2f}"
        found.append(
            {
                "what": what,
                "measured": measured,
                "value": value,
                "limit": limit,
                "holds": value <= limit,
                "cpu_value": cpu,
            }
        )

    def ratio(row, other, limit, what):
        key = f"autograd / {other}"
        if key in row["ratios"]:
            add(what, row["ratios"][key], limit, cpu=row["cpu_ratios"][key] if on_cpu else None)

    cfgs = result["configs"]
    if result.get("cell", "rnn") == "rnn":
        for name, limit in (("medium", 1.25), ("large", 1.1)):
            if name in cfgs:
                ratio(cfgs[name], "numpy BPTT", limit, f"autograd ÷ numpy BPTT at {name}")
        if "small" in cfgs:
            ratio(cfgs["small"], "torch nn.RNN", 0.6, "autograd ÷ torch nn.RNN at small")
        for name in TARGET_CONFIGS:
            if name in cfgs:
                ratio(cfgs[name], "torch loop", 1.0, f"autograd ÷ torch loop at {name} (at most 1)")
    else:  # LSTM and GRU: at the adding shape and medium
        for name in ("adding", "medium"):
            if name in cfgs:
                ratio(cfgs[name], "numpy BPTT", 1.35, f"autograd ÷ numpy BPTT at {name}")
                ratio(cfgs[name], "torch loop", 1.0, f"autograd ÷ torch loop at {name} (at most 1)")
    if "t800_over_t100" in result:
        add("time(T=800) / time(T=100), autograd", result["t800_over_t100"]["autograd"], 8.8)
    for name, row in result.get("peak_memory", {}).items():
        if name in TARGET_CONFIGS or name == "adding":
            add(f"peak memory autograd ÷ numpy BPTT at {name}", row["ratio"], 1.0)
    if "mul64_fwd_bwd_us" in result.get("op_overhead", {}):
        add(
            "(64, 64) multiply chain, forward + backward per op (µs)",
            result["op_overhead"]["mul64_fwd_bwd_us"],
            12.0,
        )
    return found


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    parser = argparse.ArgumentParser(prog="python benchmarks/bench.py", description=__doc__.split("\n")[0])
    parser.add_argument("--device", default="cpu", help="cpu (NumPy) or cuda (CuPy)")
    parser.add_argument(
        "--configs", default="small,medium,large", help=f"comma-separated, from {', '.join(CONFIGS)}"
    )
    parser.add_argument("--threads", type=int, default=1, help="BLAS and torch threads (default 1)")
    parser.add_argument("--steps", type=int, default=20, help="timed steps per implementation (at least 20)")
    parser.add_argument(
        "--cell",
        default="rnn",
        choices=tuple(CELLS),
        help="the recurrent cell: rnn (default), lstm or gru (no T-scaling table for lstm, gru)",
    )
    parser.add_argument("--json", help="also write every figure to this file")
    parser.add_argument("--no-scaling", action="store_true", help="skip the T-scaling table")
    parser.add_argument(
        "--no-flush",
        action="store_true",
        help="T-scaling with float32 subnormals as they are (slow past T ≈ 150; see flush_subnormals)",
    )
    parser.add_argument(
        "--textbook-backward",
        action="store_true",
        help="walk the graph without the engine's shortcuts (tensor.textbook_backward): "
        "every op's own backward, to measure what the shortcuts buy",
    )
    parser.add_argument(
        "--default-malloc",
        action="store_true",
        help="leave glibc's malloc thresholds as they are (by default they are raised, "
        "as the examples do: tinygrad_rnn.threads.tune_malloc)",
    )
    parser.add_argument(
        "--gc-freeze",
        action="store_true",
        help="freeze the objects alive before timing (freeze_startup_objects), so that Python's "
        "cyclic garbage collector does not walk torch's objects during the steps",
    )
    args = parser.parse_args(argv)
    configs = [c.strip() for c in args.configs.split(",") if c.strip()]
    unknown = [c for c in configs if c not in CONFIGS]
    if unknown:
        parser.error(f"unknown config(s) {', '.join(unknown)}; choose from {', '.join(CONFIGS)}")
    if args.steps < 20:
        parser.error("--steps must be at least 20 (a median of fewer steps says little on a shared machine)")
    how = limit_threads(args.threads, argv)
    tuned = False if args.default_malloc else tune_malloc()
    print(f"malloc thresholds: {'raised (tune_malloc)' if tuned else 'as glibc sets them'}")
    get_backend(args.device)  # a missing GPU or CuPy fails here, with the fix
    if args.textbook_backward:
        print("backward walk: textbook (every op's own backward, no engine shortcut)")
    torch = import_torch(args.threads)
    if args.gc_freeze:
        print(f"cyclic garbage collector: {freeze_startup_objects()} startup objects frozen (gc.freeze)")
    with textbook_backward() if args.textbook_backward else contextlib.nullcontext():
        result = run(
            configs,
            device=args.device,
            threads=args.threads,
            steps=args.steps,
            t_scaling=not args.no_scaling,
            torch=torch,
            how=how,
            flush=not args.no_flush,
            cell=args.cell,
        )
    result["malloc_tuned"] = tuned
    result["gc_frozen"] = args.gc_freeze
    result["textbook_backward"] = args.textbook_backward
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=1, default=str)
    return result


if __name__ == "__main__":
    main()
