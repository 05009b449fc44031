"""Real-time recurrent learning (RTRL): the gradient of BPTT, computed forward in time.

Notation as in docs/chapter.md: one step s_t = step(x_t W + b, s_{t−1}) of a cell with parameters
θ (W, V, b, …), where the state s_t is h_t (vanilla, GRU) or the pair (h_t, c_t) (LSTM). The loss
is L = Σ_t Σ d_t ⊙ h_t: ``d_outputs`` d_t stands for ∂L/∂h_t through the output at t alone (what a
loss on the outputs hands back), so ∂L/∂θ is the gradient BPTT computes.

**The influence.** Carry M_t = ∂s_t/∂θ — how every parameter has moved the state so far (for
each of the P parameter entries, one array the shape of s_t). Differentiating one step with the
chain rule, θ enters s_t directly and through s_{t−1}:

    M_t = ∂s_t/∂s_{t−1} · M_{t−1} + ∂s_t/∂θ,        M_0 = 0 (s_0 does not depend on θ),

and the gradient adds up as time goes forward, with nothing of step t needed afterwards:

    ∂L/∂θ = Σ_t Σ d_t ⊙ ∂h_t/∂θ = Σ_t ⟨d_t, M_t^h⟩        (M_t^h: the h part of M_t).

The right-hand side of the recursion is one Jacobian-vector product of the step: push the
tangent M_{t−1} on the state and the identity on θ (direction p moves only parameter entry p)
through ``cell.step``. So :func:`rtrl` runs ``tg.jvp`` with tangents carrying a leading axis of P
directions — one pass per step advances the whole influence — through the cell's own ``step``:
no cell-specific rule is written anywhere, and the vanilla, LSTM and GRU cells all work.

**The price.** Memory is M: P × B × (state size), independent of T (BPTT keeps every step, ∝ T).
Time per step is P directions through one step: for the vanilla cell P ≈ H² and a step costs
≈ H² per direction, so ≈ H⁴ per step against BPTT's ≈ H². Exact, online, and expensive: that is
RTRL. (Tests check it against autograd's BPTT to 1e-10 in float64.)
"""

from __future__ import annotations

from ..forward import jvp
from ..nn.cells import as_parts, from_parts
from ..tensor import ShapeError, Tensor


def rtrl(cell, x, d_outputs, h0=None) -> dict:
    """∂L/∂θ for L = Σ_t Σ d_outputs_t ⊙ h_t, by real-time recurrent learning (module docstring).

    ``cell``: an ``nn.RNNCell``, ``nn.LSTMCell`` or ``nn.GRUCell`` (anything with the cell
    protocol: ``project_input``, ``step``, ``initial_state``, ``state_names``). ``x`` (B, T, E) and
    ``d_outputs`` (B, T, H): arrays or tensors; ``h0``: the initial state (a (B, H) array or
    tensor, a pair (h0, c0) for the LSTM; None: zeros). Returns ``{name: gradient}`` keyed like
    ``cell.named_parameters()``, each a device array of the parameter's shape and dtype.
    """
    named = list(cell.named_parameters())
    names, params = [n for n, _ in named], tuple(p for _, p in named)
    ref = params[0]
    xp, backend, dtype = ref.xp, ref.backend, ref.dtype
    x = x if isinstance(x, Tensor) else Tensor(x, device=backend, dtype=dtype)
    d = d_outputs._data if isinstance(d_outputs, Tensor) else backend.asarray(d_outputs, dtype=dtype)
    if x.ndim != 3 or x.shape[2] != cell.input_size:
        raise ShapeError(f"rtrl: x of shape {x.shape}, want (B, T, {cell.input_size})")
    B, T, _ = x.shape
    if tuple(d.shape) != (B, T, cell.hidden_size):
        raise ShapeError(
            f"rtrl: d_outputs of shape {tuple(d.shape)}, want (B, T, H) = "
            f"({B}, {T}, {cell.hidden_size}) for x of shape {x.shape}"
        )

    parts = as_parts(cell.initial_state(B) if h0 is None else h0)
    parts = tuple(p if isinstance(p, Tensor) else Tensor(p, device=backend, dtype=dtype) for p in parts)
    which_h = cell.state_names.index("h")  # the h among the state's parts

    directions = parameter_directions(params)
    P = directions[0].shape[0]
    influence = tuple(xp.zeros((P,) + s.shape, dtype=dtype) for s in parts)  # M_0 = 0
    grad = xp.zeros(P, dtype=dtype)
    n = len(parts)
    for t in range(T):
        x_t = x[:, t]

        def step(*state_and_params):  # the cell's own step; θ is read as cell.W, cell.V, …
            return cell.step(cell.project_input(x_t), from_parts(state_and_params[:n]))

        state, tangents = jvp(step, parts + params, influence + tuple(directions), batched=True)
        parts = as_parts(state)
        influence = tuple(m._data for m in as_parts(tangents))  # M_t
        grad += influence[which_h].reshape(P, -1) @ d[:, t].reshape(-1)  # ⟨d_t, M_t^h⟩
    return dict(zip(names, split_by_parameter(grad, params)))


def parameter_directions(params) -> list:
    """θ's tangents for one batched jvp: direction i moves entry i of θ only (the columns of the
    P × P identity, P = the number of entries of all ``params``), one (P,) + shape array each."""
    P = sum(p.size for p in params)
    eye, offset, directions = params[0].xp.eye(P, dtype=params[0].dtype), 0, []
    for p in params:
        directions.append(eye[:, offset : offset + p.size].reshape((P,) + p.shape))
        offset += p.size
    return directions


def split_by_parameter(flat, params) -> list:
    """A flat (P,) vector over all entries of ``params`` (in :func:`parameter_directions`' order)
    as one array per parameter, in its shape."""
    out, offset = [], 0
    for p in params:
        out.append(flat[offset : offset + p.size].reshape(p.shape))
        offset += p.size
    return out
