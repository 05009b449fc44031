# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 05 · Four ways through time
#
# Notebooks 02 and 04 computed the gradient through time one way: record the T steps, walk the tape back
# (BPTT). That is not the only way, and it is not free: the tape holds every step, so memory grows with T.
# This notebook computes **the same gradient** four ways and measures what each costs:
#
# | method | what it keeps | memory | time | exact? |
# |---|---|---|---|---|
# | BPTT | every step's activations | ∝ T | ∝ T | yes |
# | checkpointed BPTT (k = √T) | one state per k steps; each segment is run again in the backward | ∝ √T | ∝ T, about one extra forward | yes |
# | RTRL (real-time recurrent learning) | the influence M_t = ∂h_t/∂θ, carried forward | ∝ P · B · H, not T | ∝ T, but ∝ H⁴ per step | yes |
# | truncated BPTT (k steps) | one chunk of k steps | ∝ k | ∝ T | no: biased |
#
# The problem is the chapter's recurrence h_t = tanh(x_t W + h_{t−1} V + b) (and the LSTM and GRU steps),
# with the loss L = Σ_t Σ d_t ⊙ h_t for fixed random d_t — what any loss on the outputs hands back as
# ∂L/∂h_t. Everything runs in float64 on the CPU, at small sizes, in well under half a minute. Where the text
# says what an output shows, an `assert` in the cell checks it; timings are printed, never asserted (the
# machine may be busy).
#
# The same measurements at larger sizes: `tinygrad-rnn bptt compare` (docs/through-time.md).

# %%
# tracemalloc sees host memory only, so everything here runs on the CPU whatever DEVICE says
DEVICE = "cpu"

import importlib.util
import pathlib
import tempfile

import matplotlib.pyplot as plt

from tinygrad_rnn.bptt import compare as C
from tinygrad_rnn.bptt import rtrl
from tinygrad_rnn.plotting.compare import plot_compare

# %% [markdown]
# ## 1. One gradient, four ways
#
# `C.gradient(method, layer, x, d, k)` computes ∂L/∂θ for the layer's cell by each method:
#
# * `bptt`: `(outputs * d).sum().backward()` — the tape walked back from t = T to t = 1;
# * `checkpoint`: the same with the layer's `checkpoint=k`: only every k-th state is kept, and each k-step
#   segment is recomputed, recording, when the backward reaches it (`tg.checkpoint`);
# * `rtrl`: `tinygrad_rnn.bptt.rtrl(cell, x, d)` — no backward pass at all. It carries
#   M_t = ∂h_t/∂h_{t−1} · M_{t−1} + ∂h_t/∂θ forward with one forward-mode pass (`tg.jvp`) per step, and adds
#   ⟨d_t, M_t⟩ to the gradient as it goes;
# * `truncated`: BPTT over chunks of k steps, the state carried on but detached at every cut.
#
# The error is max |g − g_BPTT| / max |g_BPTT| over all parameters.

# %%
layer = C.make_layer("rnn", 8)  # nn.RNN(4, 8), float64
x, d = C.make_data(layer, 40, 4)  # x (4, 40, 4), d (4, 40, 8)
reference = C.gradient("bptt", layer, x, d)
errors = {}
for method, k in (("checkpoint", 6), ("rtrl", None), ("truncated", 10)):
    errors[method] = C.relative_error(C.gradient(method, layer, x, d, k), reference)
    print(f"{method:>10} (k = {k}): error against BPTT {errors[method]:.1e}")
assert errors["checkpoint"] <= 1e-12 and errors["rtrl"] <= 1e-10  # exact, to rounding
assert errors["truncated"] > 0.05  # truncation is not

# %% [markdown]
# The exact two are exact for the gated cells too — RTRL needs no rule of its own for them: the tangent
# goes through the cell's own `step`, whatever it is.

# %%
for cell in ("lstm", "gru"):
    small = C.make_layer(cell, 4)
    xs, ds = C.make_data(small, 12, 2)
    ref = C.gradient("bptt", small, xs, ds)
    e_ckpt = C.relative_error(C.gradient("checkpoint", small, xs, ds, 3), ref)
    e_rtrl = C.relative_error(rtrl(small.cells[0], xs, ds), ref)
    print(f"{cell}: checkpoint {e_ckpt:.1e}, RTRL {e_rtrl:.1e}")
    assert e_ckpt <= 1e-12 and e_rtrl <= 1e-10

# %% [markdown]
# ## 2. What each one keeps
#
# `C.compare` runs every method at several T: peak memory of one gradient from `tracemalloc` (what NumPy and
# Python allocated during it, above what existed before) and the best of a few timed runs. On log–log axes a
# cost ∝ T^a is a line of slope a.

# %%
rows = C.compare("rnn", 8, (20, 40, 80, 160), 4, truncate=10, budget=0.05)
print(C.format_table(rows))
print()
print(C.format_laws(rows))
figure = plot_compare(
    rows,
    pathlib.Path(tempfile.mkdtemp()) / "four-ways.png",
    slopes=C.cost_slopes(rows),
    laws=C.LAWS,
    title="four ways through time: rnn, H = 8, B = 4",
)
plt.figure(figsize=(11, 4.2))
plt.imshow(plt.imread(figure))
plt.axis("off")
plt.show()

# %% [markdown]
# What the memory column shows (the times are printed above; on a small problem Python's fixed cost per op
# blurs their slopes):
#
# * **BPTT** grows in proportion to T (slope near 1): every step's activations are on the tape.
# * **RTRL** does not grow at all: it holds h_t and M_t, whatever T is. For short sequences that flat line is
#   *above* BPTT's — M has P · B · H numbers (P = H² + E·H + H parameters) and RTRL builds a P × P identity
#   for the directions — and BPTT's rising line crosses it as T grows. (At larger H the crossing moves far
#   out: P grows as H².)
# * **Checkpointing** grows more slowly than BPTT and stays below it. Its slope is not 0.5: the outputs
#   h_1 … h_T, the input projection x W + b and their gradients are B × T × H arrays that every method with a
#   tape keeps, so only the recurrence's share drops to √T.
# * **Truncation** keeps one chunk: flat, the smallest of all.

# %%
slopes = C.cost_slopes(rows)
peak = {(r.method, r.T): r.peak_bytes for r in rows}
assert slopes["bptt"][0] > 0.8  # ∝ T
assert slopes["rtrl"][0] < 0.1 and slopes["truncated"][0] < 0.2  # independent of T
assert all(peak["truncated", T] == min(peak[m, T] for m in C.METHODS) for T in (20, 40, 80, 160))  # smallest
assert slopes["checkpoint"][0] < slopes["bptt"][0] and peak["checkpoint", 160] < peak["bptt", 160]
assert peak["rtrl", 20] > peak["bptt", 20] and peak["rtrl", 160] < peak["bptt", 160]  # the lines cross
assert all(r.exact == (r.method != "truncated") for r in rows)

# %% [markdown]
# ## 3. RTRL's price: H⁴ per step
#
# For the vanilla cell θ = (W, V, b) has P = E·H + H² + H entries, and every step pushes P directions
# through a step that costs about B·H² each: ≈ B·H⁴ per step, against BPTT's B·H². The influence M has
# P × B × H entries. Doubling H multiplies the work per step by about 16:

# %%
for H in (4, 8, 16):
    cell = C.make_layer("rnn", H).cells[0]
    P = sum(p.size for p in cell.parameters())
    xs, ds = C.make_data(C.make_layer("rnn", H), 20, 4)
    seconds = C.best_time(lambda: rtrl(cell, xs, ds), 1, budget=0.2) / 20
    print(
        f"H = {H:>2}: P = {P:>4} directions, M holds {P * 4 * H:>6} numbers; {seconds * 1e3:.2f} ms per step"
    )
    assert P == 4 * H + H * H + H
# (at these sizes Python's cost per op still hides most of the H⁴: `bptt compare` fits the exponent at larger H)

# %% [markdown]
# ## 4. What truncation gives up
#
# Truncation is cheap and biased. How biased depends on how far back the true gradient reaches. On the adding
# problem (the loss at t = T only, the two marked steps far back) compare the truncated gradient g_k with the
# full one g, over all parameters: cos ∠(g_k, g) and ‖g_k − g‖ / ‖g‖. Two fresh vanilla models: V drawn
# uniformly (its gradient vanishes within a few steps, notebook 02) and V = I (it carries the gradient far).

# %%
tables = {}
for init in ("uniform", "identity"):
    trows, _ = C.truncation_bias("rnn", 16, (60,), (5, 10, 20), train_steps=0, init=init)
    tables[init] = {r.k: r for r in trows}
    print(f"V {init}:")
    print(C.format_truncation(trows))
assert tables["uniform"][10].cosine > 0.999  # nothing reached that far to lose
assert tables["identity"][10].cosine < 0.97 and tables["identity"][10].error > 0.3
assert tables["identity"][5].error > tables["identity"][20].error  # a longer k loses less

# %% [markdown]
# Truncation is harmless exactly where the gradient vanishes anyway, and costly where it does not — which is
# where a model has learnt to remember. `tinygrad-rnn bptt compare` shows the same for a model trained
# briefly on the adding problem.
#
# ## 5. Online: RTRL learns from a stream
#
# RTRL's real use is **online learning**: the gradient of the loss at step t is ⟨∂L_t/∂h_t, M_t⟩, available
# at step t, so the weights can be updated at every step of a stream that never ends, keeping nothing of the
# past but h_t and M_t. `examples/online_rtrl.py` does this on a delayed echo (y_t = x_{t−5}, x_t = ±1) and
# sets BPTT over windows of the stream beside it. A window shorter than the delay has no gradient path back
# to the input it should repeat.

# %%
spec = importlib.util.spec_from_file_location(
    "online_rtrl", pathlib.Path("..") / "examples" / "online_rtrl.py"
)
online = importlib.util.module_from_spec(spec)
spec.loader.exec_module(online)
xs, ys = online.echo_stream(1500, 5)
curves = {
    "RTRL, online": online.train_rtrl(xs, ys, 16, 3e-3)[0],
    "BPTT over windows of 3": online.train_windows(xs, ys, 16, 3, 3e-3),
}
for label, errors in curves.items():
    plt.plot(online.running_mean(errors, 200), label=label)
    print(f"{label}: MSE over the last 500 steps {errors[-500:].mean():.3f}")
plt.yscale("log")
plt.xlabel("step of the stream")
plt.ylabel("MSE, running mean of 200 steps")
plt.legend()
plt.show()
assert curves["RTRL, online"][-500:].mean() < 0.1  # learnt the echo from one pass of the stream
assert curves["BPTT over windows of 3"][-500:].mean() > 0.5  # a window of 3 cannot reach 5 steps back

# %% [markdown]
# The window of 3 is not at MSE 1: the head still reads whatever the untrained recurrence happens to keep
# of x_{t−5}, but the cell itself gets no gradient to keep it. The full run (6,000 steps, with a window of 20
# too) is `python examples/online_rtrl.py --out docs/img/online-rtrl.png`.
#
# **Which one when?** BPTT when the sequence fits in memory; checkpointing when it does not, for about one
# more forward pass; truncation when the dependencies you need are shorter than k (and you accept the bias);
# RTRL when the gradient must be there at every step of a stream and the model is small — its H⁴ is why
# nobody trains large models with it, and why approximations of it (UORO and others) exist.
