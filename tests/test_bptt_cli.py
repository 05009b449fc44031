"""``tinygrad-rnn bptt experiment|flow|graph|trace`` through the real command line entry point."""

import re
import shutil

import pytest
from cli_helpers import assert_one_error_line, run

from tinygrad_rnn.cli import main

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")  # pydot's parser on new pyparsing


@pytest.fixture(autouse=True)
def in_tmp(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # default outputs go to ./runs
    return tmp_path


def test_trace_prints_forward_up_and_backward_down(capsys):
    code, out, _ = run(capsys, "bptt", "trace", "--steps", "3", "--hidden", "2")
    assert code == 0
    assert "forward visits t = [1, 2, 3]; backward (BPTT) visits t = [3, 2, 1]" in out
    assert re.search(
        r"backward\s+2\s+addmm\s+\(2,2\) → \(2,2\), \(2,2\), \(2,2\)\s+\S+\s+rnn\.cells\.0\.V", out
    ), out
    code, out, _ = run(capsys, "bptt", "trace", "--phase", "forward")
    assert (
        code == 0
        and not re.search(r"^\s+\d+\s+backward", out, re.M)
        and re.search(r"^\s+\d+\s+forward", out, re.M)
    )


def test_graph_prints_dot_and_writes_svg_when_dot_is_there(capsys, in_tmp):
    pydot = pytest.importorskip("pydot")
    code, out, err = run(capsys, "bptt", "graph", "--steps", "3", "--out", "g.svg")
    assert code == 0
    graph = pydot.graph_from_dot_data(out)[0]
    assert {s.get_name() for s in graph.get_subgraphs()} == {"cluster_t1", "cluster_t2", "cluster_t3"}
    assert "cell.V" in out and "cell.W" in out
    if shutil.which("dot"):
        assert (in_tmp / "g.svg").read_text().lstrip().startswith(("<?xml", "<svg")) and "wrote g.svg" in err
    else:
        assert "apt-get install graphviz" in err


def test_graph_without_graphviz_says_how_to_get_it(capsys, monkeypatch, in_tmp):
    monkeypatch.setattr(shutil, "which", lambda name: None)
    code, out, err = run(capsys, "bptt", "graph", "--steps", "2", "--rnn")
    assert code == 0 and out.startswith("digraph") and "rnn.cells.0.V" in out
    assert "apt-get install graphviz" in err and not (in_tmp / "runs").exists()


@pytest.mark.parametrize(
    "cell, model, state",
    [
        (None, "V init uniform", "h"),
        ("rnn", "V init uniform", "h"),
        ("lstm", "lstm", "s"),
        ("gru", "gru", "h"),
    ],
)
def test_the_flow_figure_names_the_model_and_its_state_as_the_terminal_does(
    capsys, monkeypatch, cell, model, state
):
    """The figure's title names the cell drawn (not "fresh None"); its legend writes the state as the
    terminal's columns do: h for the vanilla cell and the GRU, s = [h ; c] for the LSTM."""
    import tinygrad_rnn.plotting.bptt as plots

    drawn = {}
    monkeypatch.setattr(
        plots, "plot_gradient_flow", lambda lines, out, title: drawn.update(lines=lines, title=title)
    )
    code, out, _ = run(
        capsys,
        "bptt",
        "flow",
        "--length",
        "6",
        "--batch",
        "4",
        *(["--cell", cell] if cell else []),
        "--out",
        "f.png",
    )
    assert code == 0, out
    assert drawn["title"] == f"Gradient flow, adding problem, T = 6, {model} (fresh)"
    assert f"‖∂{state}_T/∂{state}_t‖₂" in out
    assert f"‖∂L/∂h_T‖ · ‖∂{state}_T/∂{state}_t‖₂ (Jacobian bound)" in drawn["lines"], list(drawn["lines"])


def test_flow_of_a_fresh_model(capsys, in_tmp):
    code, out, _ = run(capsys, "bptt", "flow", "--length", "20", "--batch", "8", "--rows", "5", "--no-plot")
    assert code == 0
    assert "T = 20, V init uniform: fresh model" in out and "‖∂h_T/∂h_t‖₂" in out
    rows = [line for line in out.splitlines() if re.match(r"\s+\d+\s+\d\.\d{3}e", line)]
    steps = [int(r.split()[0]) for r in rows]
    assert len(steps) == 5 and steps[0] == 1 and steps[-1] == 20 and steps == sorted(steps), steps
    code, out, _ = run(
        capsys,
        "bptt",
        "flow",
        "--length",
        "20",
        "--batch",
        "8",
        "--rows",
        "20",
        "--no-plot",
        "--truncate",
        "5",
    )
    assert code == 0 and "truncated BPTT every 5 steps" in out
    norms = [float(line.split()[1]) for line in out.splitlines() if re.match(r"\s+\d+\s+\d\.\d{3}e", line)]
    assert len(norms) == 20 and all(v == 0 for v in norms[:15]) and all(v > 0 for v in norms[15:]), norms
    pytest.importorskip("matplotlib")
    code, out, _ = run(capsys, "bptt", "flow", "--length", "12", "--init", "identity", "--batch", "4")
    assert (
        code == 0
        and (in_tmp / "runs" / "bptt-flow" / "adding-T12-identity.png").read_bytes()[:4] == b"\x89PNG"
    )


def test_experiment_then_flow_of_its_checkpoint(capsys, in_tmp):
    code, out, err = run(
        capsys,
        "bptt",
        "experiment",
        "--lengths",
        "4,6",
        "--init",
        "identity",
        "--budget-seconds",
        "30",
        "--max-steps",
        "10",
        "--hidden",
        "4",
        "--out",
        "exp",
    )
    assert code == 0
    assert "| 4 | identity | 10 |" in out and "| 6 | identity | 10 |" in out and "wall time" in out
    assert "training T=6, init=identity" in err and "load average" in err
    assert (in_tmp / "exp" / "checkpoints" / "adding-T6-identity.npz").exists()
    code, out, _ = run(
        capsys,
        "bptt",
        "flow",
        "--checkpoint",
        "exp",
        "--length",
        "6",
        "--init",
        "identity",
        "--no-plot",
        "--batch",
        "4",
    )
    assert code == 0 and "trained model exp/checkpoints/adding-T6-identity.npz" in out and "10 steps" in out


def test_bad_input_gets_one_line(capsys, in_tmp):
    code, _, err = run(capsys, "bptt", "flow", "--checkpoint", "nowhere.npz")
    assert code == 2 and err.strip() == "error: no checkpoint at nowhere.npz"
    (in_tmp / "exp").mkdir()
    code, _, err = run(capsys, "bptt", "flow", "--checkpoint", "exp", "--length", "9")
    assert code == 2 and "no adding-T9-uniform.npz in exp" in err and "found: no .npz files" in err
    with pytest.raises(SystemExit) as exit_info:
        main(["bptt", "experiment", "--init", "uniform,xavier"])
    assert exit_info.value.code == 2
    assert (
        "invalid comma-separated list of uniform, orthogonal, identity value: 'uniform,xavier'"
        in capsys.readouterr().err
    )


@pytest.mark.parametrize(
    "argv, needle",
    [
        (["experiment", "--forget-bias", "nan"], "invalid finite number, 'none' or 'chrono' value: 'nan'"),
        (["experiment", "--forget-bias", "inf"], "invalid finite number, 'none' or 'chrono' value: 'inf'"),
        (["experiment", "--forget-bias=-inf"], "value: '-inf'"),
        (["experiment", "--cells", "lstm,lstm"], "argument --cells: lstm given twice"),
        (["experiment", "--init", "uniform,uniform"], "argument --init: uniform given twice"),
        (["experiment", "--lengths", "5,5"], "argument --lengths: 5 given twice"),
    ],
)
def test_non_finite_forget_bias_and_repeated_list_values_are_refused_at_parse_time(capsys, argv, needle):
    with pytest.raises(SystemExit) as exit_info:
        main(["bptt", *argv])
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and needle in err and "Traceback" not in err, err


def test_options_that_would_change_nothing_are_refused(capsys, in_tmp):
    code, _, err = run(
        capsys, "bptt", "experiment", "--cells", "lstm", "--init", "orthogonal", "--lengths", "4"
    )
    assert_one_error_line(code, err, "--init", "no rnn")
    assert not (in_tmp / "runs").exists()
    code, _, err = run(capsys, "bptt", "flow", "--checkpoint", "somewhere.npz", "--hidden", "7")
    assert_one_error_line(code, err, "--hidden 7", "its own size")
    code, _, err = run(capsys, "bptt", "flow", "--checkpoint", "exp", "--cell", "lstm", "--init", "identity")
    assert_one_error_line(code, err, "--init", "lstm")


def test_flow_finds_a_gated_cells_checkpoint_in_an_experiment_directory(capsys, in_tmp):
    code, _, err = run(
        capsys,
        "bptt",
        "experiment",
        "--cells",
        "lstm",
        "--lengths",
        "4",
        "--max-steps",
        "2",
        "--hidden",
        "3",
        "--out",
        "exp",
    )
    assert code == 0, err
    assert (in_tmp / "exp" / "checkpoints" / "adding-T4-lstm.npz").exists()
    code, out, err = run(
        capsys,
        "bptt",
        "flow",
        "--checkpoint",
        "exp",
        "--length",
        "4",
        "--cell",
        "lstm",
        "--no-plot",
        "--batch",
        "2",
    )
    assert code == 0, err
    assert "trained model exp/checkpoints/adding-T4-lstm.npz" in out
