"""The benchmark's own correctness: its references compute the same step, and it refuses to time
implementations that disagree. (Timing itself is never asserted.)"""

import gc
import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest


def _load_bench(name="bench"):
    """benchmarks/bench.py (peers.py) is a script beside the package, not part of it: load it by path."""
    path = Path(__file__).resolve().parents[1] / "benchmarks" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up here
    spec.loader.exec_module(module)
    return module


bench = _load_bench()
peers = _load_bench("peers")  # imports the bench module above, not a second copy

TINY = (3, 4, 5, 6, 3)  # B, T, E, H, C


def _problem64(seed=1, cell="rnn"):
    p = bench.make_problem(*TINY, seed=seed, cell=cell)
    for name in ("x", *p.names):
        setattr(p, name, getattr(p, name).astype(np.float64))
    return p


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
def test_hand_derived_bptt_equals_autograd_in_float64(cell):
    p = _problem64(cell=cell)
    ref, ag = bench.NumpyBPTT(p, "cpu"), bench.Autograd(p, "cpu")
    for w in ag.named.values():  # nn layers are float32 by default
        w.data = w.data.astype(np.float64)
    ag.x.data = p.x
    loss_r, grads_r = ref.loss_and_grads()
    loss_a, grads_a = ag.loss_and_grads()
    assert abs(loss_r - loss_a) <= 1e-12 * abs(loss_r)
    assert list(grads_r) == list(grads_a) == list(p.names)
    for n in p.names:
        np.testing.assert_allclose(grads_a[n], grads_r[n], rtol=1e-10, atol=1e-14, err_msg=f"{cell}: dL/d{n}")


def test_agreement_check_names_the_implementation_and_gradient_that_differ():
    p = bench.make_problem(*TINY)
    impls = bench.make_impls(p, "cpu", torch=None)

    class Broken(bench.NumpyBPTT):
        name = "broken"

        def loss_and_grads(self):
            loss, grads = super().loss_and_grads()
            grads["V"] = grads["V"] * 1.01
            return loss, grads

    assert bench.check_agreement(impls) < 1e-4
    with pytest.raises(AssertionError, match=r"broken: dL/dV differs"):
        bench.check_agreement(impls + [Broken(p, "cpu")])


@pytest.mark.parametrize("cell, fused", [("rnn", "nn.RNN"), ("lstm", "nn.LSTM"), ("gru", "nn.GRU")])
def test_torch_implementations_agree_when_torch_is_installed(cell, fused):
    torch = pytest.importorskip("torch")
    p = bench.make_problem(*TINY, cell=cell)
    impls = bench.make_impls(p, "cpu", torch)
    assert [i.name for i in impls] == ["numpy BPTT", "autograd", f"torch {fused}", "torch loop"]
    assert bench.check_agreement(impls) < 1e-4
    for impl in impls:  # one SGD step each: still in agreement
        impl.step()
    bench.check_agreement(impls, rtol=1e-3)


def test_timing_runs_every_implementation_from_the_same_weights():
    p = bench.make_problem(*TINY)
    impls = bench.make_impls(p, "cpu", torch=None)
    times, cpu, load = bench.time_steps(impls, steps=20, sync=lambda: None, block=5, warmup=1)
    assert all(len(t) >= 20 for t in times.values())
    assert all(len(cpu[name]) == len(t) and min(cpu[name]) >= 0 for name, t in times.items())
    assert set(load) == {"other_cores_busy", "own_cpu_per_wall", "loadavg_1min"}
    for impl in impls:  # reset restores the initial weights exactly
        impl.reset()
    bench.check_agreement(impls, rtol=1e-5)


@pytest.mark.parametrize("cell, limit", [("rnn", 1.1), ("lstm", 1.4), ("gru", 1.2)])
def test_graph_memory_stays_near_the_hand_written_step(cell, limit):
    """tracemalloc is deterministic: the graph must not hold intermediates (see test_graph_memory).
    A shape where arrays, not the graph's Python objects, dominate (as in every bench config).
    Measured: vanilla 0.94 × the hand-written step, LSTM 1.29, GRU 1.08 (with the textbook walk,
    which keeps every step's δ until it stacks them: 1.25, 1.59, 1.26); one more (T, B, H)
    array held by the graph fails."""
    p = bench.make_problem(32, 20, 32, 64, 4, cell=cell)
    ref, ag = bench.peak_memory(bench.NumpyBPTT(p, "cpu")), bench.peak_memory(bench.Autograd(p, "cpu"))
    assert ag <= limit * ref, (
        f"{cell}: autograd step peaks at {ag} bytes, hand-written at {ref} (limit {limit}×)"
    )


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_run_times_the_gated_cells(monkeypatch, cell):
    monkeypatch.setitem(bench.CONFIGS, "small", TINY)
    lines = []
    result = bench.run(["small"], steps=20, overhead=False, out=lines.append, cell=cell)
    assert result["cell"] == cell and "t_scaling" not in result
    assert f"cell {cell}" in "\n".join(lines)
    assert result["configs"]["small"]["times"]["autograd"]["steps"] >= 20


def test_run_prints_the_table_and_checks_the_targets(monkeypatch):
    monkeypatch.setitem(bench.CONFIGS, "small", TINY)
    lines = []
    result = bench.run(["small"], steps=20, t_scaling=False, overhead=False, out=lines.append)
    text = "\n".join(lines)
    assert "small" in text and "numpy BPTT" in text and "autograd" in text
    assert result["configs"]["small"]["times"]["autograd"]["steps"] >= 20
    assert any(t["what"].startswith("peak memory") for t in result["targets"])


def test_runs_on_an_accelerator_like_device(monkeypatch):
    """The strict CuPy stand-in refuses host NumPy on device arrays: the reference, the agreement
    check and the overhead probe must all go through the backend."""
    monkeypatch.setitem(bench.CONFIGS, "small", TINY)
    lines = []
    result = bench.run(["small"], device="strict", steps=20, t_scaling=False, out=lines.append)
    assert result["device"] == "strict" and "peak_memory" not in result  # tracemalloc sees host memory only
    assert result["op_overhead"]["autograd_forward_us"] > 0


# ---- benchmarks/peers.py: the same step in other autodiff libraries ---------------------------------


def test_peers_run_checked_and_timed_on_a_tiny_config(monkeypatch):
    """Whatever peers are installed here run, agree with ours and are timed; the others are skipped
    with the pip install that brings them (tinygrad also when it has no usable device)."""
    assert peers.bench is bench
    monkeypatch.setitem(bench.CONFIGS, "small", TINY)
    lines = []
    result = peers.run(["small"], steps=20, chain=10, out=lines.append)
    text = "\n".join(lines)
    row = result["configs"]["small"]
    assert row["agreement_worst_rel_error"] < 1e-4
    assert {"tinygrad_rnn", "numpy BPTT"} <= set(row["times"])
    assert row["over_ours"]["tinygrad_rnn"] == 1.0
    for peer in peers.PEERS:
        name = peers.PEER_NAMES[peer]
        skipped = [line for line in lines if line.startswith(f"{name}: skipped")]
        assert (name in row["times"]) != bool(skipped), (name, text)
        assert not skipped or "pip install" in skipped[0] or "clang" in skipped[0], skipped
        if name in row["times"]:
            assert row["times"][name]["steps"] >= 20 and row["cpu_times"][name]["median_ms"] >= 0
    assert set(result["per_op_us"]) == {n for n in row["times"] if n != "torch nn.RNN"}
    assert all(us["cpu_us"] >= 0 and us["wall_us"] > 0 for us in result["per_op_us"].values())


def test_a_missing_peer_is_skipped_with_its_pip_install(monkeypatch):
    for module in ("autograd", "mygrad", "dezero", "jax", "tinygrad", "torch"):
        monkeypatch.setitem(sys.modules, module, None)  # import fails as if not installed
    lines = []
    impls = peers.make_impls(bench.make_problem(*TINY), out=lines.append)
    assert [i.name for i in impls] == ["tinygrad_rnn", "numpy BPTT"]
    pip = {
        "HIPS autograd": "autograd",
        "mygrad": "mygrad",
        "DeZero": "dezero",
        "JAX eager": "jax",
        "JAX jit": "jax",
        "tinygrad": "tinygrad",
        "torch loop": "torch",
        "torch nn.RNN": "torch",
    }
    assert lines == [
        f"{name}: skipped, not installed (pip install {pip[name]})" for name in peers.PEER_NAMES.values()
    ], lines


def _installed_peers():
    p = bench.make_problem(*TINY)
    found = []
    for peer in peers.PEERS:
        try:
            found.append(peer(p))
        except peers.Skipped:
            pass
    return p, found


def test_a_peer_with_a_wrong_gradient_is_refused():
    """Each installed peer agrees as it is, and the check stops the run when one of its
    gradients is off by 1 %, naming the library and the gradient."""
    p, found = _installed_peers()
    if not found:
        pytest.skip("no peer library installed here (pip install -e '.[peers]')")
    ours = peers.Ours(p, "cpu")
    for impl in found:
        assert bench.check_agreement([ours, impl]) < 1e-4, impl.name

        class Perturbed:
            name = impl.name

            def loss_and_grads(self, impl=impl):
                loss, grads = impl.loss_and_grads()
                grads = dict(grads)
                grads["b"] = np.asarray(grads["b"]) * 1.01
                return loss, grads

        with pytest.raises(AssertionError, match=rf"{impl.name}: dL/db differs"):
            bench.check_agreement([ours, Perturbed()])


def test_the_per_op_chain_refuses_a_wrong_gradient():
    class Wrong:
        name = "wrong"

        @staticmethod
        def chain(a, c, n):
            return peers.NumpyByHand.chain(a, c, n - 1)  # one factor c short

    assert set(peers.per_op([peers.Ours, peers.NumpyByHand], 50, repeats=1)) == {"tinygrad_rnn", "numpy BPTT"}
    with pytest.raises(AssertionError, match="wrong: the chain's gradient is off"):
        peers.per_op([Wrong()], 50, repeats=1)


def test_engine_share_parts_add_up_and_leave_the_engine_as_it_was():
    share = _load_bench("engine_share")
    from tinygrad_rnn import tensor as engine

    originals = (engine._input_grads, engine._Gathered.add, engine._accumulate_leaf)
    callbacks = list(gc.callbacks)
    m = share.measure("rnn", "small", steps=5)
    assert (engine._input_grads, engine._Gathered.add, engine._accumulate_leaf) == originals
    p = m["parts"]
    assert m["steps"] == 5 and "numpy BPTT" in m["others"]
    assert all(seconds >= 0 for seconds in p.values())
    assert p["walk"] >= p["formulas"] + p["gathering"] + p["leaves"]  # the three are inside the walk
    assert m["step"] == pytest.approx(p["recorded"] + p["walk"] + p["update"])
    assert m["floor"] == pytest.approx(p["plain"] + p["formulas"] + p["update"])
    per_step, one = m["products"]
    assert m["regrouped"] == pytest.approx(m["floor"] - (per_step - one))
    assert isinstance(m["full_gc_passes"], int) and gc.callbacks == callbacks  # its counter removed
