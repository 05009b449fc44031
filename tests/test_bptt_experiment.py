"""bptt.experiment (training, parallel, report): the adding-problem runs (small budgets), their table,
files and checkpoints."""

import json
import pickle

import numpy as np
import pytest

from tinygrad_rnn import nn, serialization
from tinygrad_rnn.bptt import experiment
from tinygrad_rnn.bptt.experiment import (
    LEARNED_MSE,
    AddingRNN,
    ExperimentConfig,
    load_adding_model,
    parallel,
    results_table,
    run_experiment,
    train_adding,
    training,
)
from tinygrad_rnn.bptt.flow import gradient_flow, gradient_ratio
from tinygrad_rnn.data.adding import ADDING_BASELINE_MSE, adding_problem
from tinygrad_rnn.tensor import Tensor

SMALL = dict(hidden_size=8, batch_size=32, test_size=200, probe_size=32, budget_seconds=60.0)


def test_a_short_adding_problem_is_learned_and_an_untrained_model_is_not():
    config = ExperimentConfig(max_steps=300, lr=1e-2, **SMALL)
    result, _ = train_adding(4, "uniform", config)
    assert result.steps == 300
    assert result.test_mse < LEARNED_MSE and result.learned, (
        f"T = 4 should be learned, test MSE {result.test_mse}"
    )
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

        @staticmethod
        def process_time():
            return 0.0

    monkeypatch.setattr(training, "time", Clock)
    config = ExperimentConfig(**{**SMALL, "budget_seconds": 0.3})
    result, _ = train_adding(4, "identity", config)
    # start at 0.1; steps start at 0.2 and 0.3; at 0.4 the 0.3 s budget is spent; the end reads 0.5
    assert result.steps == 2 and result.seconds == pytest.approx(0.4)


def test_run_experiment_writes_table_json_figure_and_checkpoints(tmp_path):
    config = ExperimentConfig(max_steps=15, **SMALL)
    results = run_experiment([4, 6], ["uniform", "identity"], config, out_dir=tmp_path, log=None)
    assert [(r.length, r.init) for r in results] == [
        (4, "uniform"),
        (6, "uniform"),
        (4, "identity"),
        (6, "identity"),
    ]
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
    serialization.save(other, nn.Linear(2, 3), meta={"task": "something else"})
    with pytest.raises(serialization.CheckpointError, match="not an adding-problem model"):
        load_adding_model(other)
    serialization.save(other, nn.Linear(2, 3), meta={"history": list(range(1000))})
    with pytest.raises(serialization.CheckpointError, match="not an adding-problem model") as info:
        load_adding_model(other)
    assert len(str(info.value)) < 250, "a foreign checkpoint's meta is shown shortened, not whole"
    (tmp_path / "junk.npz").write_bytes(b"not a zip")
    with pytest.raises(serialization.CheckpointError, match="not a tinygrad_rnn checkpoint"):
        load_adding_model(tmp_path / "junk.npz")


# ---- the cure: gated cells, evaluations, solved at step N ---------------------------------------


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_gated_cells_learn_a_short_adding_problem_and_report_when(cell):
    config = ExperimentConfig(**{**SMALL, "budget_seconds": None}, max_steps=300, lr=1e-2, eval_every=50)
    result, model = train_adding(4, config=config, cell=cell)
    assert result.cell == cell and model.cell == cell and result.steps == 300
    assert [s for s, _ in result.evaluations] == [50, 100, 150, 200, 250, 300]
    assert result.test_mse == result.evaluations[-1][1]
    first = next(s for s, m in result.evaluations if m < LEARNED_MSE)
    assert result.solved_step == first, result.evaluations
    assert result.learned, f"{cell} should learn T = 4, evaluations {result.evaluations}"
    assert len(result.flow_init) == 4 and all(np.isfinite(result.flow_trained))


def test_stop_when_solved_ends_the_run_at_the_first_solved_evaluation():
    config = ExperimentConfig(
        **{**SMALL, "budget_seconds": None}, max_steps=400, lr=1e-2, eval_every=50, stop_when_solved=True
    )
    result, _ = train_adding(4, config=config, cell="gru")
    assert result.solved_step is not None and result.steps == result.solved_step < 400
    assert result.test_mse < LEARNED_MSE
    with pytest.raises(ValueError, match="needs eval_every"):
        ExperimentConfig(stop_when_solved=True)
    with pytest.raises(ValueError, match="needs an end"):
        ExperimentConfig(budget_seconds=None)


def test_hidden_flow_is_the_gradient_of_the_loss_wrt_each_h_t():
    """For every cell: ‖∂L/∂h_t‖ from hidden_flow equals the gradient with h_t made a leaf (float64)."""
    x, y = adding_problem(5, 6, seed=1)
    for cell in ("rnn", "lstm", "gru"):
        model = AddingRNN(4, cell=cell, rng=np.random.default_rng(2), dtype=np.float64)
        flow = experiment.hidden_flow(model, x, y)
        assert model.rnn.cells[0].V.grad is None, "the measurement leaves the model's gradients alone"
        # finite differences of L in the direction of each h_t, by re-running the step loop by hand
        layer, c0 = model.rnn, model.rnn.cells[0]
        for t in (0, 3, 5):

            def loss_with(delta):
                state = c0.initial_state(5)
                xw = c0.project_input(Tensor(x))
                for k in range(6):
                    state = c0.step(xw[:, k], state)
                    if k == t:
                        h = c0.hidden(state) + Tensor(delta)
                        state = (h, state[1]) if cell == "lstm" else h
                h_T = c0.hidden(state)
                return ((model.head(h_T) - Tensor(y)) ** 2).mean().item()

            eps, grad = 1e-6, np.zeros((5, 4))
            for i in range(5):
                for j in range(4):
                    d = np.zeros((5, 4))
                    d[i, j] = eps
                    grad[i, j] = (loss_with(d) - loss_with(-d)) / (2 * eps)
            want = np.linalg.norm(grad, axis=1).mean()
            assert flow[t] == pytest.approx(want, rel=1e-6), (cell, t, flow[t], want)
        assert layer is model.rnn


def test_float32_training_measures_flows_in_float64_and_checkpoints_reload(tmp_path):
    config = ExperimentConfig(
        **{**SMALL, "budget_seconds": None}, max_steps=10, eval_every=5, dtype="float32"
    )
    results = run_experiment(
        [5], ["uniform"], config, out_dir=tmp_path, log=None, cells=["rnn", "lstm", "gru"]
    )
    assert [(r.cell, r.model) for r in results] == [
        ("rnn", "rnn (uniform)"),
        ("lstm", "lstm (forget bias 1)"),
        ("gru", "gru"),
    ]
    table = (tmp_path / "results.md").read_text()
    assert (
        "| lstm (forget bias 1) | 5 | 10 |" in table
        and "CPU time" in table
        and "not solved" in table
        and "Load average" in table
    )
    data = json.loads((tmp_path / "results.json").read_text())
    assert data["config"]["dtype"] == "float32" and data["results"][2]["evaluations"][0][0] == 5
    for r in results:
        model, meta = load_adding_model(r.checkpoint)
        assert meta["cell"] == r.cell and model.head.W.dtype == np.float32
        x, y = adding_problem(200, 5, seed=10_000_000 + 5)
        assert experiment.evaluate_mse(model, x, y) == pytest.approx(r.test_mse, rel=1e-6)
    assert results[1].checkpoint.endswith("adding-T5-lstm.npz")


def test_forget_bias_reaches_the_lstm_and_unknown_cells_are_refused():
    model = AddingRNN(3, cell="lstm", forget_bias=None, rng=np.random.default_rng(0))
    assert model.describe() == "lstm (forget bias like the others)"
    b = model.rnn.cells[0].b.numpy()
    assert not np.all(b[3:6] == 1.0)
    assert np.all(AddingRNN(3, cell="lstm", rng=np.random.default_rng(0)).rnn.cells[0].b.numpy()[3:6] == 1.0)
    with pytest.raises(ValueError, match="cell must be one of rnn, lstm, gru; got 'tanh'"):
        run_experiment([4], ["uniform"], ExperimentConfig(max_steps=1, **SMALL), log=None, cells=["tanh"])


def test_chrono_init_of_the_lstm_in_the_experiment(tmp_path):
    model = AddingRNN(4, cell="lstm", forget_bias="chrono", length=30, rng=np.random.default_rng(0))
    b = model.rnn.cells[0].b.numpy()
    assert model.describe() == "lstm (chrono init)"
    assert np.all(b[4:8] >= 0) and np.all(b[4:8] <= np.log(29) + 1e-6)
    np.testing.assert_array_equal(b[:4], -b[4:8])
    with pytest.raises(ValueError, match="needs the sequence length"):
        AddingRNN(4, cell="lstm", forget_bias="chrono")
    assert AddingRNN(4, cell="gru", forget_bias="chrono").describe() == "gru"  # only the LSTM has b_f
    with pytest.raises(
        ValueError, match="forget_bias must be a finite number, None or 'chrono', got 'chron'"
    ):
        ExperimentConfig(max_steps=1, forget_bias="chron")
    # each run gets chrono biases for its own T; the checkpoint loads back with them
    config = ExperimentConfig(**{**SMALL, "budget_seconds": None}, max_steps=2, forget_bias="chrono")
    results = run_experiment([6], ["uniform"], config, out_dir=tmp_path, log=None, cells=["lstm"])
    assert results[0].model == "lstm (chrono init)"
    loaded, meta = load_adding_model(results[0].checkpoint)
    assert meta["forget_bias"] == "chrono" and loaded.describe() == "lstm (chrono init)"
    x, y = adding_problem(config.test_size, 6, seed=10_000_000 + 6)
    assert experiment.evaluate_mse(loaded, x, y) == pytest.approx(results[0].test_mse, rel=1e-6)
    assert json.loads((tmp_path / "results.json").read_text())["config"]["forget_bias"] == "chrono"


def test_results_read_back_from_json_give_the_same_table(tmp_path):
    config = ExperimentConfig(**{**SMALL, "budget_seconds": None}, max_steps=4, eval_every=2)
    results = run_experiment([4], ["uniform"], config, out_dir=tmp_path, log=None, cells=["gru"])
    again = experiment.read_results(tmp_path / "results.json")
    assert results_table(again) == results_table(results)
    assert again[0].evaluations == [list(e) for e in results[0].evaluations]


def test_the_command_line_switches_to_the_cure_setup_with_cells(tmp_path, monkeypatch, capsys):
    from tinygrad_rnn.cli import main

    monkeypatch.chdir(tmp_path)
    code = main(
        [
            "bptt",
            "experiment",
            "--cells",
            "gru,rnn",
            "--lengths",
            "4",
            "--steps",
            "6",
            "--eval-every",
            "3",
            "--hidden",
            "5",
            "--forget-bias",
            "none",
            "--threads",
            "1",
        ]
    )
    out, err = capsys.readouterr()
    assert code == 0, err
    assert "| gru | 4 | 6 |" in out and "| rnn (uniform) | 4 | 6 |" in out, out
    assert "BLAS threads: 1" in err and "training T=4, cell=gru for 6 steps" in err
    data = json.loads((tmp_path / "runs" / "bptt-cure" / "results.json").read_text())
    config = data["config"]
    assert (
        config["hidden_size"],
        config["max_steps"],
        config["budget_seconds"],
        config["dtype"],
        config["eval_every"],
        config["forget_bias"],
    ) == (5, 6, None, "float32", 3, None)
    assert [e[0] for e in data["results"][0]["evaluations"]] == [3, 6]
    with pytest.raises(SystemExit):
        main(["bptt", "experiment", "--cells", "lstm,tanh"])
    assert "comma-separated list of rnn, lstm, gru" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["bptt", "experiment", "--cells", "lstm", "--forget-bias", "chrono-ish"])
    assert "invalid finite number, 'none' or 'chrono' value: 'chrono-ish'" in capsys.readouterr().err


# ---- --jobs: several runs at once, in worker processes ------------------------------------------

TINY = dict(
    hidden_size=4,
    batch_size=16,
    test_size=100,
    probe_size=8,
    budget_seconds=None,
    max_steps=200,
    lr=1e-2,
    eval_every=50,
)


def test_two_jobs_give_the_same_results_in_the_same_order_as_one(tmp_path):
    config = ExperimentConfig(**TINY)
    serial = run_experiment(
        (3, 4), ["uniform"], config, out_dir=tmp_path / "serial", log=None, cells=["rnn", "gru"]
    )
    lines = []
    parallel = run_experiment(
        (3, 4),
        ["uniform"],
        config,
        out_dir=tmp_path / "jobs2",
        log=lines.append,
        cells=["rnn", "gru"],
        jobs=2,
    )
    plan = [("rnn", 3), ("rnn", 4), ("gru", 3), ("gru", 4)]
    assert [(r.cell, r.length) for r in parallel] == [(r.cell, r.length) for r in serial] == plan
    assert any(r.solved_step for r in serial), "the comparison should include a solved step"
    for a, b in zip(serial, parallel):
        same = (
            "steps",
            "train_mse",
            "test_mse",
            "learned",
            "ratio_init",
            "ratio_trained",
            "flow_init",
            "flow_trained",
            "solved_step",
            "evaluations",
            "model",
        )
        assert {k: getattr(a, k) for k in same} == {k: getattr(b, k) for k in same}, (a.cell, a.length)
        assert pickle.loads(pickle.dumps(a)) == a, "a RunResult must pickle: it is what a worker sends back"

    # the parent wrote results.json in plan order; each worker saved its own checkpoint
    data = json.loads((tmp_path / "jobs2" / "results.json").read_text())
    assert [(r["cell"], r["length"], r["test_mse"]) for r in data["results"]] == [
        (r.cell, r.length, r.test_mse) for r in serial
    ]
    model, meta = load_adding_model(parallel[3].checkpoint)
    assert (meta["cell"], meta["length"]) == ("gru", 4) and "jobs2" in parallel[3].checkpoint
    x, y = adding_problem(100, 4, seed=10_000_000 + 4)
    assert experiment.evaluate_mse(model, x, y) == pytest.approx(parallel[3].test_mse, rel=1e-12)

    # every worker's lines reached the parent's log, each run's summary after its own lines
    for cell, length in plan:
        name = f"T={length}, " + ("init=uniform" if cell == "rnn" else "cell=gru")
        started = lines.index(f"training {name} for 200 steps")
        model_name = "rnn (uniform)" if cell == "rnn" else "gru"
        evaluated = [
            i for i, line in enumerate(lines) if line.startswith(f"  T={length:<4} {model_name:<12} step")
        ]
        summary = [i for i, line in enumerate(lines) if line.startswith(f"  → {name}: 200 steps in")]
        assert len(evaluated) == 4 and len(summary) == 1, lines
        assert started < min(evaluated) and max(evaluated) < summary[0], lines


def test_jobs_is_checked_and_never_more_processes_than_runs(monkeypatch):
    config = ExperimentConfig(max_steps=1, **SMALL)
    for jobs in (0, -1, 1.5):
        with pytest.raises(ValueError, match="jobs must be a whole number of processes, at least 1"):
            run_experiment([4], ["uniform"], config, log=None, jobs=jobs)
    workers = []
    monkeypatch.setattr(parallel, "_train_in_processes", lambda runs, n, *rest: workers.append(n) or [])
    run_experiment([4, 5], ["uniform"], config, log=None, jobs=8)
    assert workers == [2]
    assert len(run_experiment([4], ["uniform"], config, log=None, jobs=8)) == 1 and workers == [2], (
        "one run is trained here, in this process"
    )


def test_a_failing_worker_is_named_its_error_raised_and_the_finished_runs_written(
    tmp_path, monkeypatch, capsys
):
    from tinygrad_rnn.cli import main

    monkeypatch.chdir(tmp_path)
    (tmp_path / "out" / "checkpoints" / "adding-T3-gru.npz").mkdir(
        parents=True
    )  # its checkpoint cannot be saved
    code = main(
        [
            "bptt",
            "experiment",
            "--cells",
            "rnn,gru",
            "--lengths",
            "3,4",
            "--steps",
            "2",
            "--hidden",
            "4",
            "--out",
            "out",
            "--jobs",
            "2",
        ]
    )
    _, err = capsys.readouterr()
    assert code == 2, err
    assert "4 runs × 2 steps, 2 at a time in 2 processes" in err and "per process" in err
    assert (
        "  ✗ T=3, cell=gru failed: IsADirectoryError" in err and "\nerror: " in err and "Traceback" not in err
    )
    data = json.loads((tmp_path / "out" / "results.json").read_text())
    assert [(r["cell"], r["length"]) for r in data["results"]] == [("rnn", 3), ("rnn", 4), ("gru", 4)]
    left = [p.name for p in (tmp_path / "out").rglob("*") if "tmp" in p.name]
    assert not left, f"temporary files left behind: {left}"
    with pytest.raises(SystemExit):
        main(["bptt", "experiment", "--jobs", "0"])
    assert "--jobs: invalid positive integer value: '0'" in capsys.readouterr().err


@pytest.mark.parametrize("bias", [float("nan"), float("inf"), -float("inf"), np.float32("nan"), "1", True])
def test_a_forget_bias_that_is_not_a_finite_number_is_refused_everywhere(bias):
    with pytest.raises(ValueError, match="forget_bias must be a finite number"):
        nn.LSTM(2, 3, forget_bias=bias)
    with pytest.raises(ValueError, match="forget_bias must be a finite number"):
        nn.LSTMCell(2, 3, forget_bias=bias)
    if not isinstance(bias, str):
        with pytest.raises(ValueError, match="forget_bias must be a finite number"):
            AddingRNN(3, cell="lstm", forget_bias=bias, rng=np.random.default_rng(0))
    assert nn.LSTM(2, 3, forget_bias=np.float64(2.0)).cells[0].forget_bias == 2.0


def test_the_one_mse_is_the_mean_of_squares_and_refuses_shapes_that_would_broadcast():
    from tinygrad_rnn.nn.functional import mse
    from tinygrad_rnn.tensor import ShapeError

    p, t = np.array([[1.0], [2.0], [4.0]]), np.array([[1.5], [2.0], [1.0]])
    assert mse(Tensor(p), Tensor(t)).item() == pytest.approx((0.25 + 0 + 9) / 3, rel=1e-15)
    with pytest.raises(ShapeError, match=r"prediction of shape \(3, 1\) and targets of shape \(3,\)"):
        mse(Tensor(p), Tensor(t[:, 0]))


@pytest.mark.parametrize(
    "cell, init, forget_bias",
    [
        ("rnn", "uniform", 1.0),
        ("rnn", "identity", 1.0),
        ("rnn", "orthogonal", 1.0),
        ("lstm", "uniform", 1.0),
        ("lstm", "uniform", None),
        ("lstm", "uniform", 2.5),
        ("lstm", "uniform", "chrono"),
        ("gru", "uniform", 1.0),
    ],
)
def test_the_model_from_the_shared_builder_has_the_weights_of_the_layer_and_head_written_out(
    cell, init, forget_bias
):
    """AddingRNN takes its layer from nn.recurrent_layer: the same weights, drawn in the same order
    (layer, chrono biases, head), as the layer class and Linear built by hand, so every seed's run —
    and `bptt flow`'s fresh model — is the one it was before the builder was shared."""
    model = AddingRNN(5, init, cell=cell, forget_bias=forget_bias, length=12, rng=np.random.default_rng(7))
    rng = np.random.default_rng(7)
    if cell == "rnn":
        layer = nn.RNN(2, 5, init=init, rng=rng, dtype=np.float64)
    elif cell == "gru":
        layer = nn.GRU(2, 5, rng=rng, dtype=np.float64)
    else:
        layer = nn.LSTM(
            2, 5, forget_bias=None if forget_bias == "chrono" else forget_bias, rng=rng, dtype=np.float64
        )
        if forget_bias == "chrono":
            nn.chrono_init_(layer, 12, rng=rng)
    head = nn.Linear(5, 1, rng=rng, dtype=np.float64)
    want = {
        **{"rnn." + k: v for k, v in layer.state_dict().items()},
        **{"head." + k: v for k, v in head.state_dict().items()},
    }
    got = model.state_dict()
    assert list(got) == list(want)
    for name in want:
        np.testing.assert_array_equal(got[name], want[name], err_msg=f"{cell} {init} {forget_bias}: {name}")
