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
# # 02 · Backpropagation through time, by hand
#
# The vanilla RNN of the chapter, with row vectors (a batch of B sequences, x_t of shape (B, E),
# h_t of shape (B, H)):
#
# $$a_t = x_t W + h_{t-1} V + b, \qquad h_t = \tanh(a_t), \qquad t = 1, \dots, T,$$
#
# with W (E, H), V (H, H), b (H,) shared by all steps and h_0 = 0. In this notebook we
#
# 1. unroll the cell ourselves and see that it is `nn.RNN`;
# 2. derive the backward sweep — the δ_t recursion — and hold it, written out in NumPy, against the
#    library's hand-derived reference (`tinygrad_rnn.bptt.reference`) and against autograd;
# 3. watch ∂L/∂h_t over time with the `bptt.flow` tools, and explain what we see with the step Jacobians;
# 4. make the gradient vanish and explode on purpose, and cut it short with truncated BPTT.
#
# Small sizes throughout: it runs in well under a minute on a 2-core CPU. Everything is float64, so
# gradients of 10⁻²⁰ are still measured. `DEVICE = "cuda"` runs it on a GPU. Where the text says what an
# output shows, an `assert` in the cell checks it.

# %%
DEVICE = "cpu"

import matplotlib.pyplot as plt
import numpy as np

import tinygrad_rnn as tg
from tinygrad_rnn import bptt, nn
from tinygrad_rnn.bptt.flow import draw_flows, state_gradients

tg.set_default_device(DEVICE)
F64 = np.float64
B, T, E, H = 2, 5, 3, 4
rng = np.random.default_rng(0)


def host(array):
    """A gradient (a NumPy or CuPy array) as a NumPy array."""
    return tg.Tensor(array).numpy()


# %% [markdown]
# ## 1. Unrolling the cell
#
# `nn.RNN` holds one `RNNCell` per layer and direction; `rnn.cells[0]` has the parameters W, V, b. Running
# that cell in a plain Python loop gives the same states as the layer (which computes the input term x_t W + b
# of all steps in one matrix product first — same math, fewer calls).

# %%
rnn = nn.RNN(E, H, dtype=F64, rng=np.random.default_rng(1))
cell = rnn.cells[0]
x = tg.Tensor(rng.standard_normal((B, T, E)), dtype=F64, requires_grad=True)

h, states = None, []
for t in range(T):
    h = cell(x[:, t], h)  # h_t = tanh(x_t W + h_{t-1} V + b)
    states.append(h)
by_hand = np.stack([s.numpy() for s in states], axis=1)

outputs, h_last = rnn(x)
print("W", cell.W.shape, " V", cell.V.shape, " b", cell.b.shape, " outputs", outputs.shape)
print("max |loop − nn.RNN| =", np.abs(by_hand - outputs.numpy()).max())
assert np.abs(by_hand - outputs.numpy()).max() < 1e-14

# %% [markdown]
# ## 2. Deriving the backward sweep
#
# Take a loss that reads every state, L = Σ_t Σ u_t ⊙ h_t with fixed random weights u_t, so the **direct**
# gradient at step t is ∂L/∂h_t = u_t. But h_t also feeds the next step through a_{t+1} = … + h_t V + …, so
# the **total** gradient reaching h_t has a second part flowing back from the future. Writing
# δ_t = ∂L/∂a_t:
#
# $$dh_t = \underbrace{u_t}_{\text{direct}} + \underbrace{\delta_{t+1} V^\top}_{\text{from step } t+1}
#   \quad (\delta_{T+1} = 0), \qquad \delta_t = dh_t \odot (1 - h_t^2)$$
#
# because tanh′(a) = 1 − tanh(a)². Each parameter is used at every step, so its gradient is a sum over steps:
#
# $$dW = \sum_t x_t^\top \delta_t, \qquad dV = \sum_t h_{t-1}^\top \delta_t, \qquad
#   db = \sum_t \sum_{\text{batch}} \delta_t, \qquad dx_t = \delta_t W^\top.$$
#
# That is all of BPTT: one sweep t = T, …, 1 that carries δ_{t+1} Vᵀ one step back. In NumPy:

# %%
W, V, b = (p.numpy() for p in (cell.W, cell.V, cell.b))
X = x.numpy()
U = rng.standard_normal((B, T, H))  # u_t: the direct gradients

hs = np.zeros((T + 1, B, H))  # hs[t] = h_t, hs[0] = h_0 = 0
for t in range(1, T + 1):
    hs[t] = np.tanh(X[:, t - 1] @ W + hs[t - 1] @ V + b)

dW, dV, db, dX = np.zeros_like(W), np.zeros_like(V), np.zeros_like(b), np.zeros_like(X)
delta_next = np.zeros((B, H))  # δ_{T+1} = 0
for t in range(T, 0, -1):
    dh = U[:, t - 1] + delta_next @ V.T  # dh_t = u_t + δ_{t+1} Vᵀ
    delta = dh * (1 - hs[t] ** 2)  # δ_t = dh_t ⊙ (1 − h_t²)
    dW += X[:, t - 1].T @ delta
    dV += hs[t - 1].T @ delta
    db += delta.sum(axis=0)
    dX[:, t - 1] = delta @ W.T
    delta_next = delta

# %% [markdown]
# Three ways to the same numbers: our sweep, the library's reference `bptt.rnn_bptt` (the same derivation,
# also handling padding and an initial state), and autograd walking the tape of `nn.RNN` backwards.

# %%
ref = bptt.rnn_bptt(X, W, V, b, d_outputs=U)

for p in rnn.parameters():
    p.grad = None
x.grad = None
outputs, _ = rnn(x)
(outputs * tg.Tensor(U, dtype=F64)).sum().backward()
auto = {"dW": cell.W.grad, "dV": cell.V.grad, "db": cell.b.grad, "dx": x.grad}

for name, ours in dict(dW=dW, dV=dV, db=db, dx=dX).items():
    r = getattr(ref, name)
    a = host(auto[name])
    print(
        f"{name}: |ours − reference| {np.abs(ours - r).max():.1e}   |ours − autograd| {np.abs(ours - a).max():.1e}"
    )
    assert max(np.abs(ours - r).max(), np.abs(ours - a).max()) < 1e-14, name  # rounding error only

# %% [markdown]
# Agreement to rounding error (10⁻¹⁵): autograd *is* backpropagation through time; the tape just does the
# bookkeeping of the sweep for us.
#
# ## 3. Watching ∂L/∂h_t over time
#
# Now a longer sequence (T = 60, H = 32) and a loss that reads **only the last state**, as a classifier or
# the adding problem does. Then dh_T is the only direct gradient, and everything that reaches h_t for
# t < T has travelled T − t steps back. `bptt.gradient_flow` reads ‖∂L/∂h_t‖ straight off the tape (it
# asks `nn.RNN` for its states and retains their gradients).

# %%
B, T, E, H = 16, 60, 4, 32
x_long = rng.standard_normal((B, T, E))
w_out = tg.Tensor(rng.standard_normal(H) / np.sqrt(H), dtype=F64)  # one readout of h_T
last_state_loss = lambda outputs, h_last: (h_last[0] * w_out).sum()  # L reads h_T only

flows = {}
for init in ("uniform", "orthogonal", "identity"):
    rnn_long = nn.RNN(E, H, init=init, dtype=F64, rng=np.random.default_rng(1))
    flows[f"V {init}"] = bptt.gradient_flow(rnn_long, x_long, None, last_state_loss)
    print(f"V {init:<10}  ‖∂L/∂h_1‖ / ‖∂L/∂h_T‖ = {bptt.gradient_ratio(flows[f'V {init}']):.1e}")

fig, ax = plt.subplots(figsize=(7, 3.8))
draw_flows(ax, flows, normalize=True)
ax.set_title("how much of ∂L/∂h_T reaches each earlier step (fresh weights)")
plt.show()
orders = {name: -np.log10(bptt.gradient_ratio(f)) for name, f in flows.items()}  # orders of magnitude lost
assert 14 <= orders["V uniform"] <= 17
assert 2.5 <= orders["V orthogonal"] <= 4 and 2.5 <= orders["V identity"] <= 4

# %% [markdown]
# With PyTorch's default initialisation (V uniform in ±1/√H) the gradient shrinks by fifteen orders of
# magnitude over 60 steps: the first states get *nothing* to learn from. Orthogonal or identity V lose
# "only" about three orders. The same in the terminal, with a log-scale bar per step:

# %%
print(bptt.format_gradient_flow(flows["V uniform"], max_rows=12))

# %% [markdown]
# ### Why: the step Jacobians
#
# Each step back multiplies the gradient (a row vector) by the Jacobian of one step,
#
# $$J_t = \frac{\partial h_t}{\partial h_{t-1}} = \operatorname{diag}(1 - h_t^2)\, V^\top, \qquad
#   \frac{\partial L}{\partial h_{t-1}} = \frac{\partial L}{\partial h_t} J_t ,$$
#
# so over k steps ‖∂L/∂h_{T−k}‖ ≤ ‖∂L/∂h_T‖ · ‖J_T ⋯ J_{T−k+1}‖₂ ≤ ‖∂L/∂h_T‖ · Π‖J_t‖₂, and
# ‖J_t‖₂ ≤ σ_max(V) because every 1 − h² ≤ 1. `bptt.step_jacobians` builds every J_t from the forward
# states; carrying ∂L/∂h_T back with them by hand reproduces autograd's state gradients exactly:

# %%
rnn_long = nn.RNN(E, H, init="uniform", dtype=F64, rng=np.random.default_rng(1))
result = state_gradients(rnn_long, x_long, None, last_state_loss)
J = bptt.step_jacobians(result.states, rnn_long.cells[0].V.numpy())  # (B, T, H, H)
by_jacobians = bptt.backpropagate_last(J, result.grads[:, -1])
print("J", J.shape, "  max |Jacobian sweep − autograd| =", np.abs(by_jacobians - result.grads).max())
assert np.abs(by_jacobians - result.grads).max() <= 1e-14 * np.abs(result.grads).max()

# %% [markdown]
# `bptt.jacobian_view` puts the measured gradient beside those norms: the norm of the product of
# Jacobians from T back to t (and the bound it gives), and ‖J_t‖₂ of each step.

# %%
views = {
    init: bptt.jacobian_view(
        nn.RNN(E, H, init=init, dtype=F64, rng=np.random.default_rng(1)),
        x_long,
        last_state_loss,
        max_sequences=4,
    )
    for init in ("uniform", "orthogonal")
}
fig, axes = plt.subplots(1, 2, figsize=(11, 3.6))
steps = np.arange(1, T + 1)
for ax, (init, view) in zip(axes, views.items()):
    ax.semilogy(steps, view.gradient, label="measured ‖∂L/∂h_t‖")
    ax.semilogy(steps, view.bound, "--", label="bound ‖∂L/∂h_T‖·‖∂h_T/∂h_t‖₂")
    ax.semilogy(steps, view.step, ":", label="‖J_t‖₂ of the step")
    ax.set(title=f"V {init}: σ_max(V) = {view.sigma_max_V:.2f}", xlabel="time step t")
    ax.grid(alpha=0.3)
axes[0].legend(fontsize=8)
plt.tight_layout()
plt.show()
uniform, orthogonal = views["uniform"], views["orthogonal"]
assert 0.5 < np.median(uniform.step) < 1.5  # each step's ‖J_t‖₂ around one …
assert uniform.gradient[0] / uniform.gradient[-1] < 1e-12  # … yet the product shrinks fast
assert abs(orthogonal.sigma_max_V - 1) < 1e-12  # orthogonal: σ_max(V) = 1
assert orthogonal.gradient[0] / orthogonal.gradient[-1] > 1e6 * uniform.gradient[0] / uniform.gradient[-1]

# %% [markdown]
# With uniform V each step's Jacobian has norm around one, yet their *product* shrinks fast. The bound
# Π‖J_t‖₂ ≤ σ_max(V)^k is only a ceiling: what sets the rate of a long product of V's is its **spectral
# radius** ρ(V), the largest |eigenvalue| (‖V^k‖₂^{1/k} → ρ(V) as k grows), which for this V is far below
# σ_max(V). The measured gradient shrinks per step by about ρ(V) times the tanh factors 1 − h² < 1. With
# orthogonal V (every singular value, and every |eigenvalue|, exactly 1) only the tanh factors are left, so
# the decay is much slower:

# %%
V_uniform = rnn_long.cells[0].V.numpy()
rho = np.abs(np.linalg.eigvals(V_uniform)).max()
per_step = bptt.gradient_ratio(flows["V uniform"]) ** (1 / (T - 1))  # the geometric mean shrink per step
print(
    f"V uniform: σ_max(V) = {uniform.sigma_max_V:.2f}, ρ(V) = {rho:.2f}; "
    f"measured shrink per step {per_step:.2f}"
)
assert rho < 0.75 * uniform.sigma_max_V and 0.7 * rho < per_step <= rho
#
# ## 4. Vanishing and exploding on purpose
#
# Scale an orthogonal V by s: σ_max(V) = s. Below 1 the bound forces the gradient to vanish geometrically;
# above 1 it can grow geometrically — as long as the states stay out of tanh's flat tails (small inputs
# keep them there).

# %%
scaled = {}
for s in (0.5, 1.0, 1.5, 3.0):
    r = nn.RNN(E, H, init="orthogonal", dtype=F64, rng=np.random.default_rng(1))
    r.cells[0].V.data = s * r.cells[0].V.numpy()
    scaled[f"V = {s} · Q"] = bptt.gradient_flow(r, 0.01 * x_long, None, last_state_loss)
    print(f"s = {s}: ‖∂L/∂h_1‖ / ‖∂L/∂h_T‖ = {bptt.gradient_ratio(scaled[f'V = {s} · Q']):.1e}")

fig, ax = plt.subplots(figsize=(7, 3.8))
draw_flows(ax, scaled, normalize=True)
ax.set_title("σ_max(V) decides: vanishing (s < 1) or exploding (s > 1)")
plt.show()
ratio = {s: bptt.gradient_ratio(f) for s, f in zip((0.5, 1.0, 1.5, 3.0), scaled.values())}
assert ratio[0.5] < 1e-15 and ratio[1.5] > 10 and ratio[3.0] > 1e6  # vanishes below 1, grows above

# %% [markdown]
# Exploding gradients are the easy half: `train.fit` clips the gradient norm (`clip_grad_norm_`, 1.0 by
# default), so one huge step cannot throw the weights away. Vanishing has no such patch for a tanh RNN — that
# is what gated cells (LSTM, GRU) and attention are for.
#
# ## 5. Truncated BPTT
#
# A long sequence makes the backward pass long too. Truncated BPTT detaches the state every k steps, so a
# gradient travels at most k steps back: `nn.RNN(..., truncate=k)`. The forward values are unchanged; the
# gradients of the parameters only keep the paths that stay inside one chunk.

# %%
k = 10
full = nn.RNN(E, H, init="orthogonal", dtype=F64, rng=np.random.default_rng(1))
cut = nn.RNN(E, H, init="orthogonal", dtype=F64, rng=np.random.default_rng(1), truncate=k)
flow_full = bptt.gradient_flow(full, x_long, None, last_state_loss)
flow_cut = bptt.gradient_flow(cut, x_long, None, last_state_loss)
reached = np.flatnonzero(flow_cut > 0) + 1
print(
    f"truncate={k}: the gradient of h_T reaches t = {reached.min()} … {reached.max()}, "
    f"exactly zero before ({T - reached.min() + 1} steps back)"
)
assert reached.min() == T - k + 1 and reached.max() == T and not flow_cut[: T - k].any()

fig, ax = plt.subplots(figsize=(7, 3.8))
ax.semilogy(np.arange(1, T + 1), flow_full, label="full BPTT")
ax.semilogy(reached, flow_cut[reached - 1], "o", markersize=3, label=f"truncate={k}")
ax.set(xlabel="time step t", ylabel="‖∂L/∂h_t‖", title="truncation cuts the path back at a chunk boundary")
ax.grid(alpha=0.3)
ax.legend()
plt.show()

# %% [markdown]
# Truncation is a trade: the backward pass touches fewer steps per loss term, but dependencies longer than
# k steps can no longer be learned — the gradient that would teach them is set to zero, not just small.
# With a loss on *every* output each output still sends gradient back up to k steps, and only the longer
# paths are lost; how much of dV that is depends on how far gradients would have travelled (far, with an
# orthogonal V):

# %%
u_all = tg.Tensor(rng.standard_normal((B, T, H)), dtype=F64)  # one upstream weight per output
for model in (full, cut):
    for p in model.parameters():
        p.grad = None
    outs, _ = model(tg.Tensor(x_long, dtype=F64))
    (outs * u_all).sum().backward()
dV_full, dV_cut = host(full.cells[0].V.grad), host(cut.cells[0].V.grad)
rel = np.linalg.norm(dV_full - dV_cut) / np.linalg.norm(dV_full)
print(f"loss on every output: ‖dV_full − dV_truncated‖ / ‖dV_full‖ = {rel:.3f}")
assert 0.1 < rel < 1  # a large part of dV came from paths longer than k steps

# %% [markdown]
# Notebook 03 trains the three kinds of RNN model of the chapter on real data.
