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
# # 01 · Autograd from scratch
#
# Backpropagation through time is ordinary reverse-mode differentiation applied to a long chain of
# small operations. Before we unroll an RNN (notebook 02) we look at the machine underneath:
#
# 1. a **Tensor**: an array, the device it lives on, and the op that made it;
# 2. **one op**: a forward on arrays and, beside it, the backward that turns ∂L/∂output into ∂L/∂input;
# 3. the **tape** that records the ops, and the **reverse walk** over it that `loss.backward()` does;
# 4. **gradcheck**: finite differences as the referee of every backward;
# 5. an **exercise**: write your own op (softplus) and check it with `tinygrad_rnn.testing` in three lines.
#
# Everything is tiny: the whole notebook runs top to bottom in a few seconds on a 2-core CPU. Where the text
# says what an output shows, an `assert` in the cell checks it: the notebook stops rather than say something
# false.
# Set `DEVICE = "cuda"` below to run it on a GPU (needs CuPy: `pip install -e '.[gpu]'`).

# %%
DEVICE = "cpu"

import inspect

import numpy as np

import tinygrad_rnn as tg
from tinygrad_rnn import bptt, ops
from tinygrad_rnn.gradcheck import gradcheck

tg.set_default_device(DEVICE)
rng = np.random.default_rng(0)

# %% [markdown]
# ## 1. A Tensor
#
# A `Tensor` wraps an array of the device's array library (NumPy on `cpu`, CuPy on `cuda`).
# `requires_grad=True` marks a *leaf* we want gradients for — a parameter, or an input we are curious
# about. Python floats become float32, as in PyTorch; for checking gradients we use float64.

# %%
x = tg.Tensor([[0.5, -1.0, 2.0]], requires_grad=True, dtype=np.float64)
print(x)
print("shape", x.shape, "| dtype", x.dtype, "| device", x.device, "| leaf:", x.is_leaf)
assert x.is_leaf and x.dtype == np.float64
assert tg.Tensor([0.5]).dtype == np.float32  # a Python float becomes float32

# %% [markdown]
# Every operation on tensors goes through an **op**, and the result remembers it:

# %%
y = (x * x).exp()
print(y)  # op=exp: y was made by the exponential, whose input was made by a product
print("leaf:", y.is_leaf)
assert "op=exp" in repr(y) and not y.is_leaf

# %% [markdown]
# ## 2. One op: forward and backward side by side
#
# An op is a small class. `forward` computes on raw arrays and keeps what its derivative will need;
# `backward` receives `g = ∂L/∂output` and returns `∂L/∂input`, one gradient per input. Here are two of
# the library's own ops — the code you read is the code that runs:

# %%
print(inspect.getsource(ops.Exp))
print(inspect.getsource(ops.Mul))

# %% [markdown]
# For y = eᵃ the local derivative is eᵃ = y itself, so `Exp` keeps its output and backward is `g * y`.
# For c = a ⊙ b, ∂L/∂a = g ⊙ b and ∂L/∂b = g ⊙ a. `unbroadcast` sums the gradient back down to an input's
# shape when broadcasting stretched it (a bias row added to every row of a batch receives the *sum* of
# their gradients).
#
# Nothing stops us from calling an op by hand, without any tensors, to see the two halves work:

# %%
exp_op = ops.Exp()
exp_op.xp = np  # the array module; Op.apply sets it from the device
a = np.array([0.0, 1.0, 2.0])
out = exp_op.forward(a)
g = np.array([1.0, 1.0, 1.0])  # pretend L = Σ y, so ∂L/∂y = 1
print("forward :", out)
print("backward:", exp_op.backward(g), "(= eᵃ, as it must)")
assert np.allclose(exp_op.backward(g), np.exp(a))

# %% [markdown]
# ## 3. The tape and its reverse walk
#
# `Op.apply` runs `forward` and — if any input requires a gradient — **records** the op: its inputs and a
# creation number. That record is the tape. `loss.backward()` then visits the recorded ops from the newest
# back to the oldest, hands each op the gradient of its output and passes what comes out on to the ops that
# made its inputs. Where two paths meet (a tensor used twice), the gradients add up.
#
# To see that it is nothing more, here is the whole idea for scalars in 30 lines — our own tape, our own
# reverse walk — next to the library's result.


# %%
class Scalar:
    """A number that remembers how it was made: the tape entry of a tiny scalar autograd."""

    created = 0

    def __init__(self, value, parents=(), local_grads=()):
        self.value, self.parents, self.local_grads = value, parents, local_grads
        self.grad = 0.0
        Scalar.created += 1
        self.number = Scalar.created  # creation order: parents are always older

    def __add__(self, other):
        return Scalar(self.value + other.value, (self, other), (1.0, 1.0))

    def __mul__(self, other):
        return Scalar(self.value * other.value, (self, other), (other.value, self.value))

    def tanh(self):
        t = np.tanh(self.value)
        return Scalar(t, (self,), (1 - t * t,))

    def backward(self):
        # Collect everything on the tape behind self, newest first: every consumer of a
        # value is newer than the value, so it has handed on its gradient before we get to it.
        seen, stack, tape = {id(self)}, [self], []
        while stack:
            node = stack.pop()
            tape.append(node)
            for p in node.parents:
                if id(p) not in seen:
                    seen.add(id(p))
                    stack.append(p)
        self.grad = 1.0
        for node in sorted(tape, key=lambda n: -n.number):
            for parent, local in zip(node.parents, node.local_grads):
                parent.grad += node.grad * local  # chain rule; += where paths meet


# h = tanh(x·w + h0·v + b), then L = h · h: the same numbers, two engines.
xs, ws, h0s, vs, bs = Scalar(0.5), Scalar(-1.2), Scalar(0.3), Scalar(0.8), Scalar(0.1)
h = (xs * ws + h0s * vs + bs).tanh()
L = h * h
L.backward()

t = {
    k: tg.Tensor(v, requires_grad=True, dtype=np.float64)
    for k, v in dict(x=0.5, w=-1.2, h0=0.3, v=0.8, b=0.1).items()
}
h_t = (t["x"] * t["w"] + t["h0"] * t["v"] + t["b"]).tanh()
(h_t * h_t).backward()

for name, s in zip(t, (xs, ws, h0s, vs, bs)):
    print(f"∂L/∂{name:<2}  ours {s.grad:+.12f}   tinygrad_rnn {t[name].grad.item():+.12f}")
    assert abs(s.grad - t[name].grad.item()) < 1e-12, name

# %% [markdown]
# The library does exactly this with arrays instead of numbers — the walk takes the op with the highest
# creation number from a heap, so even a chain of 10,000 steps needs no recursion. `bptt.trace()` lets us
# watch it: every op run forward, then every backward step, in order.

# %%
W = tg.Tensor(rng.standard_normal((3, 2)), requires_grad=True, dtype=np.float64)
b = tg.Tensor(rng.standard_normal(2), requires_grad=True, dtype=np.float64)
u = tg.Tensor(rng.standard_normal((1, 2)), dtype=np.float64)  # a fixed upstream weighting

with bptt.trace(params={"x": x, "W": W, "b": b}) as tr:
    loss = ((x @ W + b).tanh() * u).sum()
    loss.backward()
print(tr.table())
assert [r.op for r in tr.backward] == [r.op for r in tr.forward][::-1]  # exactly the reverse order
assert {r.op: set(r.params) for r in tr.backward if r.params} == {"add": {"b"}, "matmul": {"x", "W"}}

# %% [markdown]
# Read the backward rows bottom-up against the forward rows: `sum`, `mul`, `tanh`, `add`, `matmul` come
# back in exactly the reverse order, and the params column shows where a leaf's `.grad` was filled in.

# %%
print("∂L/∂W =\n", W.grad)
print("∂L/∂b =", b.grad)

# %% [markdown]
# ## 4. gradcheck: finite differences referee every backward
#
# A backward can be wrong in ways that still train a little. The test is the definition of the derivative:
# nudge one input element by ±ε and watch the loss,
#
# $$\frac{\partial L}{\partial x_i} \approx \frac{L(x + \varepsilon e_i) - L(x - \varepsilon e_i)}{2\varepsilon}.$$
#
# In float64 with ε = 10⁻⁶ the central difference is good to about 10⁻¹⁰ — far tighter than any bug.


# %%
def f(x, W, b):
    return (x @ W + b).tanh()


eps, i, j = 1e-6, 0, 1
host_W = W.numpy()
plus, minus = host_W.copy(), host_W.copy()
plus[i, j] += eps
minus[i, j] -= eps
u_host = u.numpy()
L_of = lambda Wv: float((f(x, tg.Tensor(Wv, dtype=np.float64), b).numpy() * u_host).sum())
numeric = (L_of(plus) - L_of(minus)) / (2 * eps)
print(f"∂L/∂W[{i},{j}]  numeric {numeric:.10f}   autograd {float(W.grad[i, j]):.10f}")
assert abs(numeric - float(W.grad[i, j])) < 1e-9

# %% [markdown]
# `gradcheck(fn, inputs)` does this properly: a random upstream gradient (never all ones, which hides
# transposition bugs), and two modes — `"full"` nudges every element of every input; `"direction"` nudges
# all inputs at once along one random direction, which costs two forward passes whatever the size (that is
# what makes a whole unrolled RNN checkable). It returns True or raises with the input, element, numeric and
# analytic values.

# %%
passed = gradcheck(f, [x, W, b], mode="full"), gradcheck(f, [x, W, b], mode="direction")
print(*passed)
assert passed == (True, True)

# %% [markdown]
# ## 5. Exercise: write your own op
#
# **softplus** is a smooth ReLU: softplus(a) = log(1 + eᵃ), and its derivative is the sigmoid,
# d/da softplus(a) = 1 / (1 + e⁻ᵃ). Write it as an `Op` subclass:
#
# ```python
# class Softplus(tg.Op):
#     name = "softplus"
#
#     def forward(self, a):
#         ...        # use self.xp (numpy or cupy), keep what backward needs on self
#
#     def backward(self, g):
#         ...        # return ∂L/∂a from g = ∂L/∂output
# ```
#
# Hints: eᵃ overflows for large a, but log(1 + eᵃ) = max(a, 0) + log(1 + e^(−|a|)) never does
# (`self.xp.maximum`, `self.xp.log1p`, `self.xp.exp`, `self.xp.abs`); backward multiplies g by the derivative. Then check it — on 100 random inputs of random shapes, forward against NumPy, backward
# against finite differences in both modes — in three lines:
#
# ```python
# from tinygrad_rnn.testing import check_op
# check_op(Softplus, reference=lambda a: np.logaddexp(0, a))
# ```
#
# Try it in a new cell before you open the solution below.

# %% [markdown]
# ### Solution


# %% jupyter={"source_hidden": true}
class Softplus(tg.Op):
    """softplus(a) = log(1 + eᵃ); d/da = σ(a) = 1 / (1 + e⁻ᵃ)."""

    name = "softplus"

    def forward(self, a):
        self.a = a
        xp = self.xp  # log(1 + eᵃ), never overflowing
        return xp.maximum(a, 0) + xp.log1p(xp.exp(-xp.abs(a)))

    def backward(self, g):
        return g / (1 + self.xp.exp(-self.a))


# %%
from tinygrad_rnn.testing import GradcheckError, check_op

check_op(Softplus, reference=lambda a: np.logaddexp(0, a), device=DEVICE)

# %% [markdown]
# And it is a real check: the classic slip, the derivative's sign flipped (σ(−a) instead of σ(a)), is caught
# at once; Hypothesis then shrinks the failing input to a small one and shows it.


# %%
class SoftplusWrong(Softplus):
    def backward(self, g):
        return g / (1 + self.xp.exp(self.a))  # σ(−a): wrong


try:
    check_op(SoftplusWrong, device=DEVICE)
except GradcheckError as e:
    print(type(e).__name__, "—", e)
    print("\n".join(getattr(e, "__notes__", [])))
    assert "softplus" in str(e) and any("array(" in note for note in getattr(e, "__notes__", []))
else:
    raise AssertionError("the wrong backward was not caught")

# %% [markdown]
# Use it like any op: `Softplus.apply(t)`, and it takes part in every backward pass.

# %%
z = tg.Tensor(rng.standard_normal(4), requires_grad=True, dtype=np.float64)
Softplus.apply(z).sum().backward()
print("σ(z) by hand:", 1 / (1 + np.exp(-z.numpy())))
print("z.grad      :", z.grad)
assert np.allclose(tg.Tensor(z.grad).numpy(), 1 / (1 + np.exp(-z.numpy())))

# %% [markdown]
# `check_op` also takes several inputs (`check_op(MyOp, 2)` draws two shapes that broadcast), fixed shapes
# (`check_op(fn, [(2, 3), (3, 4)])`), values kept away from a kink (`avoid=(0,)` for a ReLU) and any function
# of tensors instead of an op class. Next, notebook 02 unrolls the RNN cell and does the backward walk by hand.
