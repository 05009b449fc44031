"""Four ways through time (``bptt.compare``, ``tinygrad-rnn bptt compare``): exact where exact,
biased where not."""

import json

import numpy as np
import pytest
from cli_helpers import assert_one_error_line, run

from tinygrad_rnn.bptt import compare as C
from tinygrad_rnn.cli import main


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
def test_exact_methods_equal_bptt_and_truncation_does_not(cell):
    rows = C.compare(cell, 4, (7, 12), 2, truncate=3, repeats=1)
    assert [(r.method, r.T) for r in rows] == [(m, T) for T in (7, 12) for m in C.METHODS]
    for r in rows:
        if r.method == "checkpoint":
            assert r.error <= 1e-12 and r.exact, f"{cell}: checkpoint at T={r.T}: error {r.error:.2e}"
            assert r.k == round(np.sqrt(r.T))
        elif r.method == "rtrl":
            assert r.error <= 1e-10 and r.exact, f"{cell}: RTRL at T={r.T}: error {r.error:.2e}"
        elif r.method == "truncated":
            assert r.error > 1e-3 and not r.exact, (
                f"{cell}: truncation at T={r.T} looks exact ({r.error:.2e})"
            )
        else:
            assert r.error == 0.0
        assert r.peak_bytes > 0 and r.seconds > 0
    table = C.format_table(rows)
    assert "| rtrl | 12 |  | yes |" in table and "| truncated | 12 | 3 | no |" in table


def test_chunked_truncation_is_what_truncate_k_computes():
    """The truncated method (one chunk recorded at a time) gives the layer's truncate=k gradient."""
    layer = C.make_layer("lstm", 3)
    x, d = C.make_data(layer, 11, 2)
    chunked = C.gradient("truncated", layer, x, d, k=4)
    layer.truncate = 4
    whole = C.gradient("bptt", layer, x, d)
    assert C.relative_error(chunked, whole) <= 1e-12
    layer.truncate = None
    assert C.relative_error(chunked, C.gradient("bptt", layer, x, d)) > 1e-3


def test_rtrl_memory_does_not_grow_with_T_and_bptt_does():
    rows = C.compare("rnn", 8, (10, 80), 4, methods=("bptt", "rtrl"))
    peak = {(r.method, r.T): r.peak_bytes for r in rows}
    assert peak["bptt", 80] > 4 * peak["bptt", 10]
    # RTRL holds x as a tensor (∝ T, but tiny); its influence and identity do not grow
    assert peak["rtrl", 80] - peak["rtrl", 10] < 0.1 * (peak["bptt", 80] - peak["bptt", 10])
    slopes = C.cost_slopes(rows)
    assert slopes["rtrl"][0] < 0.2 and slopes["bptt"][0] > 0.7


def test_slope_recovers_a_power_law():
    assert C.slope([10, 100, 1000], [3e-3, 3e-3 * 10**0.5, 3e-3 * 10]) == pytest.approx(0.5)


def test_truncation_bias_rows():
    rows, mse = C.truncation_bias("rnn", 4, (6, 12), (2, 8), batch=4, train_steps=2)
    assert mse is not None and np.isfinite(mse)
    # k ≥ T is plain BPTT and is left out; every row of a cut sequence has a cosine ≤ 1
    assert {(r.state, r.T, r.k) for r in rows} == {
        (s, T, k) for s in ("fresh", "trained") for T, k in ((6, 2), (12, 2), (12, 8))
    }
    assert all(-1 <= r.cosine <= 1 + 1e-12 and r.error >= 0 for r in rows)
    assert "(k ≥ T: exact)" in C.format_truncation(rows)


def test_the_command_writes_tables_and_figure(capsys, tmp_path):
    out = tmp_path / "cmp"
    code, stdout, _ = run(
        capsys,
        "bptt",
        "compare",
        "--hidden",
        "3",
        "--lengths",
        "6,9",
        "--batch",
        "2",
        "--truncate",
        "2",
        "--train-steps",
        "1",
        "--out",
        out,
    )
    assert code == 0
    assert "| rtrl | 9 |  | yes |" in stdout and "| truncated | 9 | 2 | no |" in stdout
    assert "memory slope (law)" in stdout and "k = 4: cos, rel. error" in stdout
    data = json.loads((out / "compare.json").read_text())
    assert {r["method"]: r["exact"] for r in data["rows"]} == {
        "bptt": True,
        "checkpoint": True,
        "rtrl": True,
        "truncated": False,
    }
    assert (out / "compare.md").read_text().strip() in stdout
    assert (out / "compare.png").stat().st_size > 0


@pytest.mark.parametrize(
    "argv, needle",
    [
        (["--lengths", "1,5"], "invalid comma-separated list of lengths >= 2 value: '1,5'"),
        (["--lengths", "5,5"], "argument --lengths: 5 given twice"),
        (
            ["--methods", "rtrl,adjoint"],
            "invalid comma-separated list of bptt, checkpoint, rtrl, truncated value",
        ),
        (["--hidden", "0"], "invalid positive integer value: '0'"),
        (["--batch", "-2"], "invalid positive integer value: '-2'"),
        (["--cell", "transformer"], "invalid choice: 'transformer'"),
        (["--train-steps", "-1"], "invalid integer >= 0 value: '-1'"),
    ],
)
def test_bad_options_are_refused_at_parse_time(capsys, argv, needle):
    with pytest.raises(SystemExit) as exit_info:
        main(["bptt", "compare", *argv])
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and needle in err and "Traceback" not in err, err
    assert len([line for line in err.splitlines() if line.startswith("tinygrad-rnn")]) == 1


def test_rtrl_too_big_and_out_a_file_get_one_line_before_anything_runs(capsys, tmp_path):
    code, out, err = run(capsys, "bptt", "compare", "--hidden", "128", "--out", tmp_path / "x")
    assert_one_error_line(code, err, "RTRL at --hidden 128", "--methods without rtrl")
    assert out == "" and not (tmp_path / "x").exists()
    (tmp_path / "file").write_text("mine")
    code, out, err = run(capsys, "bptt", "compare", "--hidden", "2", "--out", tmp_path / "file")
    assert_one_error_line(code, err, "--out", "is a file")
    assert (tmp_path / "file").read_text() == "mine"
    for extra, needle in (
        (["--figure", "f.svg"], "name a .png file"),
        (["--figure", "f.png", "--no-plot"], "--no-plot"),
    ):
        code, out, err = run(capsys, "bptt", "compare", "--hidden", "2", "--out", tmp_path / "y", *extra)
        assert_one_error_line(code, err, "--figure", needle)
        assert not (tmp_path / "y").exists()


def test_the_rtrl_size_check_counts_parameters_like_the_cells(capsys, tmp_path, monkeypatch):
    """The refusal names P computed without building the (maybe huge) cell: the cell's own count."""
    from tinygrad_rnn.cli import compare as cli_compare

    for cell in ("rnn", "lstm", "gru"):
        monkeypatch.setattr(cli_compare, "RTRL_MAX_BYTES", 0)  # refuse everything, to read P
        code, _, err = run(
            capsys, "bptt", "compare", "--cell", cell, "--hidden", "7", "--out", tmp_path / cell
        )
        P = sum(p.size for p in C.make_layer(cell, 7).cells[0].parameters())
        assert_one_error_line(code, err, f"RTRL at --hidden 7 ({cell}: P = {P} parameters)")
