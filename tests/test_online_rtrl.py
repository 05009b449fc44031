"""examples/online_rtrl.py: its online RTRL gradient is BPTT's, and the script runs end to end."""

import importlib.util
import os
import subprocess
import sys

import numpy as np

import tinygrad_rnn as tg

EXAMPLE = os.path.join(
    os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "examples", "online_rtrl.py"
)


def _example():
    spec = importlib.util.spec_from_file_location("online_rtrl", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_online_gradients_with_frozen_weights_sum_to_bptt():
    """With no updates, Σ_t ∂L_t/∂θ from the carried influence is ∂(Σ_t L_t)/∂θ by BPTT, to 1e-10."""
    ex = _example()
    x, y = ex.echo_stream(13, 3, seed=1)
    _, online = ex.train_rtrl(x, y, 3, lr=1e-2, seed=2, update=False)
    rnn, head = ex.make_model(3, seed=2)
    outputs, _ = rnn(tg.Tensor(x.reshape(1, -1, 1)))
    ((head(outputs) - tg.Tensor(y.reshape(1, -1, 1))) ** 2).sum().backward()
    for (name, p), g in zip(rnn.cells[0].named_parameters(), online):
        err = np.abs(g - p.grad).max()
        assert err <= 1e-10 * max(1.0, np.abs(p.grad).max()), (
            f"{name}: online RTRL and BPTT differ by {err:.2e}"
        )


def test_echo_stream_is_the_input_delayed():
    x, y = _example().echo_stream(10, 4)
    assert set(np.unique(x)) <= {-1.0, 1.0} and (y[:4] == 0).all() and (y[4:] == x[:-4]).all()


def test_the_script_runs_and_draws(tmp_path):
    out = tmp_path / "online.png"
    proc = subprocess.run(
        [sys.executable, EXAMPLE, "--quick", "--out", str(out)], capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    lines = proc.stdout.strip().splitlines()
    assert lines[0].startswith("RTRL online:") and lines[1].startswith("BPTT, windows of 3")
    assert lines[2].startswith("BPTT, windows of 20") and lines[-1] == f"wrote {out}"
    assert out.stat().st_size > 0
