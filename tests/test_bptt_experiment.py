"""bptt.experiment: the adding-problem runs (small budgets), their table, files and checkpoints."""

import json

import numpy as np
import pytest

from tinygrad_rnn import checkpoint, nn
from tinygrad_rnn.bptt import experiment
from tinygrad_rnn.bptt.experiment import (LEARNED_MSE, AddingRNN, ExperimentConfig, load_adding_model,
                                          results_table, run_experiment, train_adding)
from tinygrad_rnn.bptt.flow import gradient_flow, gradient_ratio
from tinygrad_rnn.data.adding import ADDING_BASELINE_MSE, adding_problem
from tinygrad_rnn.tensor import Tensor

SMALL = dict(hidden_size=8, batch_size=32, test_size=200, probe_size=32, budget_seconds=60.0)


def test_a_short_adding_problem_is_learned_and_an_untrained_model_is_not():
    config = ExperimentConfig(max_steps=300, lr=1e-2, **SMALL)
    result, _ = train_adding(4, "uniform", config)
    assert result.steps == 300
    assert result.test_mse < LEARNED_MSE and result.learned, f"T = 4 should be learned, test MSE {result.test_mse}"
    untrained, _ = train_adding(4, "uniform", ExperimentConfig(max_steps=0, **SMALL))
    assert untrained.steps == 0 and not untrained.learned
    assert untrained.test_mse > ADDING_BASELINE_MSE, untrained.test_mse
    assert untrained.ratio_trained == untrained.ratio_init


def test_ratio_at_init_is_measured_on_the_untrained_model():
    config = ExperimentConfig(max_steps=5, seed=3, **SMALL)
    result, _ = train_adding(7, "orthogonal", config)
    fresh = AddingRNN(8, "orthogonal", rng=np.random.default_rng(3))
    x, y = adding_problem(200, 7, seed=10_000_000 + 7)
    flow = gradient_flow(fresh.rnn, x[:32], None, fresh.loss_fn(Tensor(y[:32])))
    np.testing.assert_allclose(result.flow_init, flow, rtol=1e-12)
    assert result.ratio_init == pytest.approx(gradient_ratio(flow), rel=1e-12)
    assert len(result.flow_trained) == 7 and result.flow_trained != result.flow_init


def test_the_time_budget_stops_training(monkeypatch):
    """A clock that advances 0.1 s per reading: the budget is checked against it, not the wall."""
    class Clock:
        now = 0.0

        @classmethod
        def perf_counter(cls):
            cls.now += 0.1
            return cls.now

    monkeypatch.setattr(experiment, "time", Clock)
    config = ExperimentConfig(**{**SMALL, "budget_seconds": 0.3})
    result, _ = train_adding(4, "identity", config)
    # start at 0.1; steps start at 0.2 and 0.3; at 0.4 the 0.3 s budget is spent; the end reads 0.5
    assert result.steps == 2 and result.seconds == pytest.approx(0.4)


def test_run_experiment_writes_table_json_figure_and_checkpoints(tmp_path):
    config = ExperimentConfig(max_steps=15, **SMALL)
    results = run_experiment([4, 6], ["uniform", "identity"], config, out_dir=tmp_path, log=None)
    assert [(r.length, r.init) for r in results] == [(4, "uniform"), (6, "uniform"), (4, "identity"), (6, "identity")]
    data = json.loads((tmp_path / "results.json").read_text())
    assert data["config"]["max_steps"] == 15 and len(data["results"]) == 4
    assert [len(r["flow_init"]) for r in data["results"]] == [4, 6, 4, 6]
    table = (tmp_path / "results.md").read_text()
    rows = [line for line in table.splitlines() if line[:3] in ("| 4", "| 6")]
    assert len(rows) == 4 and "| 6 | identity | 15 |" in table, table
    assert results_table(results) in table
    pytest.importorskip("matplotlib")
    assert (tmp_path / "gradient-flow.png").read_bytes()[:4] == b"\x89PNG"

    # each checkpoint reloads into the same model
    model, meta = load_adding_model(results[3].checkpoint)
    assert meta["length"] == 6 and meta["init"] == "identity" and meta["steps"] == 15
    x, y = adding_problem(200, 6, seed=10_000_000 + 6)
    got = ((model(Tensor(x)) - Tensor(y)) ** 2).mean().item()
    assert got == pytest.approx(results[3].test_mse, rel=1e-12)


def test_bad_lengths_inits_and_foreign_checkpoints(tmp_path):
    with pytest.raises(ValueError, match="at least 2"):
        run_experiment([1], ["uniform"], ExperimentConfig(max_steps=1, **SMALL), log=None)
    with pytest.raises(ValueError, match="unknown init 'xavier'"):
        run_experiment([4], ["xavier"], ExperimentConfig(max_steps=1, **SMALL), log=None)
    other = tmp_path / "other.npz"
    checkpoint.save(other, nn.Linear(2, 3), meta={"task": "something else"})
    with pytest.raises(checkpoint.CheckpointError, match="not an adding-problem model"):
        load_adding_model(other)
    checkpoint.save(other, nn.Linear(2, 3), meta={"history": list(range(1000))})
    with pytest.raises(checkpoint.CheckpointError, match="not an adding-problem model") as info:
        load_adding_model(other)
    assert len(str(info.value)) < 250, "a foreign checkpoint's meta is shown shortened, not whole"
    (tmp_path / "junk.npz").write_bytes(b"not a zip")
    with pytest.raises(checkpoint.CheckpointError, match="not a readable checkpoint"):
        load_adding_model(tmp_path / "junk.npz")
