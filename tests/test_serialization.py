"""serialization.save / load: round trip, no pickle, atomic writes, damaged or mismatched files refused
with the model and optimizer untouched, loading onto the model's device."""

import json
import os

import numpy as np
import pytest
from devices import device_params

import tinygrad_rnn as tg
from tinygrad_rnn import nn, optim, serialization
from tinygrad_rnn.files import atomic_write
from tinygrad_rnn.serialization import CheckpointError


def make(seed=0, device="cpu", hidden=4, layers=2):
    tg.manual_seed(seed)
    model = nn.RNN(3, hidden, num_layers=layers, bidirectional=True, device=device)
    return model, optim.Adam(model.named_parameters(), lr=0.01)


def train_steps(model, opt, steps=2, seed=1):
    rng = np.random.default_rng(seed)
    for _ in range(steps):
        opt.zero_grad()
        out, _ = model(
            tg.Tensor(rng.normal(size=(2, 5, 3)).astype(np.float32), device=model.device), lengths=[5, 3]
        )
        (out * out).mean().backward()
        opt.step()


def snapshot(model, opt):
    """Everything a load could change, as host copies."""
    sd = opt.state_dict()
    return (
        model.state_dict(),
        json.dumps(sd["hyperparameters"]),
        {(i, k): np.array(v) for i, s in sd["state"].items() for k, v in s.items()},
    )


def assert_same(a, b):
    (m1, h1, s1), (m2, h2, s2) = a, b
    assert m1.keys() == m2.keys() and h1 == h2 and s1.keys() == s2.keys()
    for k in m1:
        np.testing.assert_array_equal(m1[k], m2[k], err_msg=k)
    for k in s1:
        np.testing.assert_array_equal(s1[k], s2[k], err_msg=str(k))


@pytest.fixture
def saved(tmp_path):
    model, opt = make(seed=0)
    train_steps(model, opt)
    path = tmp_path / "model.npz"
    serialization.save(path, model, opt, meta={"epoch": 3, "vocab": ["a", "b"]})
    return path, model, opt


def test_round_trip_restores_model_optimizer_and_meta(saved):
    path, model, opt = saved
    fresh_model, fresh_opt = make(seed=99)
    meta = serialization.load(path, fresh_model, fresh_opt)
    assert meta == {"epoch": 3, "vocab": ["a", "b"]}
    assert_same(snapshot(fresh_model, fresh_opt), snapshot(model, opt))
    train_steps(model, opt, seed=5)  # resuming continues exactly like not stopping
    train_steps(fresh_model, fresh_opt, seed=5)
    assert_same(snapshot(fresh_model, fresh_opt), snapshot(model, opt))


def test_file_is_plain_arrays_and_json_without_pickle(saved):
    path, model, _ = saved
    with np.load(path, allow_pickle=False) as z:
        names = set(z.files)
        assert all(z[n].dtype != object for n in names)
        header = json.loads(z["__meta__"].tobytes().decode("utf-8"))
    assert {f"model/{n}" for n, _ in model.named_parameters()} <= names
    assert "optimizer/0/exp_avg" in names and header["optimizer"]["type"] == "Adam"
    assert header["optimizer"]["scalars"]["0"]["step"] == 2


@pytest.mark.parametrize("device", device_params())
def test_loads_onto_the_device_the_model_is_on(saved, device):
    path, model, opt = saved
    target, target_opt = make(seed=5, device=device)
    serialization.load(path, target, target_opt)
    assert all(p.device == device for p in target.parameters())
    assert all(
        s["exp_avg"].__class__ is p.data.__class__ for p, s in zip(target.parameters(), target_opt.state)
    )
    assert_same(snapshot(target, target_opt), snapshot(model, opt))
    train_steps(target, target_opt)  # the loaded state works on that device


def test_model_only_checkpoint(tmp_path):
    model, _ = make(seed=0)
    serialization.save(tmp_path / "m.npz", model)
    fresh, fresh_opt = make(seed=1)
    assert serialization.load(tmp_path / "m.npz", fresh) is None
    np.testing.assert_array_equal(fresh.cells[2].V.numpy(), model.cells[2].V.numpy())
    before = snapshot(fresh, fresh_opt)
    other, _ = make(seed=2)
    with pytest.raises(CheckpointError, match="has no optimizer state"):
        serialization.load(tmp_path / "m.npz", other, fresh_opt)
    assert_same(snapshot(fresh, fresh_opt), before)


# ---- atomic writes -----------------------------------------------------------------------------


def test_crash_during_write_keeps_the_old_checkpoint(saved, monkeypatch):
    path, model, opt = saved
    old_bytes = path.read_bytes()

    def crash(file, **arrays):
        file.write(b"PK\x03\x04 half a zip")
        raise KeyboardInterrupt("power cut")

    monkeypatch.setattr(serialization.np, "savez", crash)
    with pytest.raises(KeyboardInterrupt):
        serialization.save(path, model, opt)
    assert path.read_bytes() == old_bytes
    assert os.listdir(path.parent) == [path.name], "the temporary file must be removed"


def test_save_renames_a_finished_file_in_the_same_directory(saved, monkeypatch):
    path, model, opt = saved
    renames = []
    real_replace = os.replace

    def spy(src, dst):
        renames.append((src, dst))
        with np.load(src, allow_pickle=False) as z:  # complete before it becomes visible
            assert "__meta__" in z.files
        real_replace(src, dst)

    monkeypatch.setattr(serialization.os, "replace", spy)
    serialization.save(path, model, opt)
    ((src, dst),) = renames
    assert os.path.dirname(src) == str(path.parent) and dst == str(path)
    assert os.listdir(path.parent) == [path.name]


def test_atomic_write_is_all_or_nothing(tmp_path, monkeypatch):
    from tinygrad_rnn.data import Vocab

    path = tmp_path / "vocab.json"
    Vocab(["a", "b"]).save(path)
    old = path.read_text(encoding="utf-8")
    with pytest.raises(RuntimeError, match="disk full"):
        with atomic_write(path, "w", encoding="utf-8") as f:
            f.write('{"format": "tinygrad_rnn.vo')
            raise RuntimeError("disk full")
    assert path.read_text(encoding="utf-8") == old and os.listdir(tmp_path) == ["vocab.json"]

    def crash(obj, f, **kw):
        f.write('{"format": ')
        raise KeyboardInterrupt("power cut")

    monkeypatch.setattr("json.dump", crash)  # the vocabulary's own save is atomic too
    with pytest.raises(KeyboardInterrupt):
        Vocab(["a", "b", "c"]).save(path)
    monkeypatch.undo()
    assert Vocab.load(path) == Vocab(["a", "b"]) and os.listdir(tmp_path) == ["vocab.json"]


def test_meta_must_be_json(tmp_path):
    model, _ = make()
    with pytest.raises(TypeError, match="JSON-serialisable"):
        serialization.save(tmp_path / "x.npz", model, meta={"array": np.zeros(2)})
    assert os.listdir(tmp_path) == []


# ---- damaged or mismatched files: a clear error, nothing changed ------------------------------------


def assert_refused(path, match):
    model, opt = make(seed=7)
    train_steps(model, opt, steps=1, seed=8)
    before = snapshot(model, opt)
    with pytest.raises(CheckpointError, match=match):
        serialization.load(path, model, opt)
    assert_same(snapshot(model, opt), before)


@pytest.mark.parametrize("keep", [0.0, 0.1, 0.5, 0.9, 0.999])
def test_truncated_file_is_refused(saved, tmp_path, keep):
    path = saved[0]
    data = path.read_bytes()
    cut = tmp_path / "cut.npz"
    cut.write_bytes(data[: int(len(data) * keep)])
    assert_refused(cut, "cannot read the checkpoint")


def test_corrupted_bytes_are_refused_or_harmless(saved, tmp_path):
    """Flip bytes all over the file: every load either fails cleanly or gives the saved values."""
    path, model, opt = saved
    data = bytearray(path.read_bytes())
    want = snapshot(model, opt)
    broken = tmp_path / "broken.npz"
    refused = 0
    for position in np.linspace(0, len(data) - 1, 60).astype(int):
        damaged = bytearray(data)
        damaged[position] ^= 0xFF
        broken.write_bytes(bytes(damaged))
        target, target_opt = make(seed=7)
        before = snapshot(target, target_opt)
        try:
            serialization.load(broken, target, target_opt)
        except CheckpointError:
            refused += 1
            assert_same(snapshot(target, target_opt), before)
        else:  # the flip hit bytes nobody reads (a timestamp, say): the values must be intact
            assert_same(snapshot(target, target_opt), want)
    assert refused >= 30, f"only {refused} of 60 damaged files were refused"


def test_not_a_checkpoint(tmp_path):
    junk = tmp_path / "junk.npz"
    junk.write_text("hello")
    assert_refused(junk, "not a tinygrad_rnn checkpoint")
    single = tmp_path / "single.npy"
    np.save(single, np.zeros(3))
    assert_refused(single, "a single .npy array, not a checkpoint")
    other = tmp_path / "other.npz"
    np.savez(other, a=np.zeros(2))
    assert_refused(other, "no readable metadata")
    with pytest.raises(FileNotFoundError):
        serialization.load(tmp_path / "missing.npz", make()[0])


def test_a_malformed_optimizer_entry_is_refused(saved, tmp_path):
    with np.load(saved[0], allow_pickle=False) as z:
        arrays = {name: z[name] for name in z.files}
    arrays["optimizer/0"] = np.zeros(2)  # no "<index>/<state name>"
    odd = tmp_path / "odd.npz"
    np.savez(odd, **arrays)
    assert_refused(odd, "malformed optimizer entry 'optimizer/0'")


def test_mismatched_names_and_shapes_are_listed(tmp_path):
    small, small_opt = make(hidden=5, layers=1)
    serialization.save(tmp_path / "small.npz", small, small_opt)
    model, opt = make(seed=7)
    before = snapshot(model, opt)
    with pytest.raises(CheckpointError) as e:
        serialization.load(tmp_path / "small.npz", model, opt)
    message = str(e.value)
    assert "missing keys: cells.2.W, cells.2.V, cells.2.b, cells.3.W" in message
    assert "cells.0.V: shape (5, 5) in the state dict, (4, 4) in the model" in message
    assert_same(snapshot(model, opt), before)


def test_optimizer_mismatch_leaves_the_model_untouched_too(tmp_path):
    model, _ = make(seed=0)
    sgd = optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    train_steps(model, sgd)
    serialization.save(tmp_path / "sgd.npz", model, sgd)
    assert_refused(tmp_path / "sgd.npz", "it is for 'SGD', this is Adam")


def test_importing_never_touches_the_umask_and_files_get_the_usual_permissions(tmp_path):
    """checkpoint/files must not set the process umask (not even to read it: that races with
    threads); the OS applies it to the temporary file itself."""
    import subprocess
    import sys

    code = (
        "import os\n"
        "def refuse(*a): raise AssertionError('os.umask called')\n"
        "os.umask = refuse\n"
        "import tinygrad_rnn.serialization, tinygrad_rnn.files, tinygrad_rnn.train, tinygrad_rnn.cli\n"
        "from tinygrad_rnn.files import atomic_write\n"
        f"with atomic_write({str(tmp_path / 'f.txt')!r}, 'w') as f: f.write('x')\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    umask = os.umask(0o022)
    os.umask(umask)
    with atomic_write(tmp_path / "g.txt", "w") as f:
        f.write("y")
    assert os.stat(tmp_path / "g.txt").st_mode & 0o777 == 0o666 & ~umask
    assert sorted(os.listdir(tmp_path)) == ["f.txt", "g.txt"]


@pytest.mark.parametrize("content", ["text", "pickle", "npz-with-objects"])
def test_a_pickle_or_text_file_is_not_a_checkpoint_and_no_unsafe_advice(tmp_path, content):
    """NumPy's own error suggests allow_pickle=True, i.e. running the file's code: never shown."""
    import pickle

    path = tmp_path / "best.npz"
    if content == "text":
        path.write_text("model weights, honest\n")
    elif content == "pickle":
        path.write_bytes(pickle.dumps({"model/w": np.zeros(3)}))
    else:
        np.savez(path, **{"model/w": np.array([{"a": 1}], dtype=object)})
    model, opt = make(seed=7)
    before = snapshot(model, opt)
    with pytest.raises(CheckpointError, match="not a tinygrad_rnn checkpoint") as info:
        serialization.load(path, model, opt)
    assert "allow_pickle" not in str(info.value)
    assert_same(before, snapshot(model, opt))
