"""What the recurrent-layer tests share: array comparisons and the cell-by-cell specification."""

import numpy as np

import tinygrad_rnn as tg


def assert_relative(actual, expected, name, tol=1e-10):
    """max |actual − expected| ≤ tol · max |expected| (exact agreement where expected is all 0)."""
    actual, expected = np.asarray(actual), np.asarray(expected)
    assert actual.shape == expected.shape, f"{name}: shape {actual.shape} vs {expected.shape}"
    err, scale = np.abs(actual - expected).max(), np.abs(expected).max()
    assert err <= tol * scale or err == 0, (
        f"{name}: max abs difference {err:.3g} at "
        f"{np.unravel_index(np.argmax(np.abs(actual - expected)), actual.shape)}"
        f" exceeds {tol:g} × max |reference| = {tol * scale:.3g}"
    )


def parts(state):
    return state if isinstance(state, tuple) else (state,)


def host_state(state):
    return tuple(s.numpy() for s in parts(state))


def run_cells_one_by_one(layer, x, h0, lengths):
    """The specification: each sequence alone, only its true steps, through layer.cells in order.

    ``h0`` is None or a list of the state's parts, each (cells, B, H) (one part, or the LSTM's
    (h0, c0)); returns the outputs (B, T, H·D) and the last state, (parts, cells, B, H).
    """
    B, T, _ = x.shape
    H, D = layer.hidden_size, layer.directions
    n_parts = len(layer.cells[0].state_names)
    outputs, last = np.zeros((B, T, H * D)), np.zeros((n_parts, len(layer.cells), B, H))
    for b in range(B):
        n = int(lengths[b])
        inputs = [tg.Tensor(x[b : b + 1, t]) for t in range(n)]
        for lay in range(layer.num_layers):
            per_direction = []
            for d in range(D):
                k = lay * D + d
                state = None if h0 is None else tuple(tg.Tensor(p[k, b : b + 1]) for p in h0)
                state = state if state is None or n_parts > 1 else state[0]
                hs = [None] * n
                for t in range(n) if d == 0 else reversed(range(n)):
                    state = layer.cells[k](inputs[t], state)
                    hs[t] = parts(state)[0]
                if state is not None:
                    last[:, k, b] = [s[0] for s in host_state(state)]
                per_direction.append(hs)
            inputs = [tg.cat([s[t] for s in per_direction], axis=1) for t in range(n)]
        outputs[b, :n] = np.concatenate([i.numpy() for i in inputs], axis=0)
    return outputs, last
