"""The BLAS thread count: one by default, --threads N to override, a count set in the environment kept.

The limits are process-wide, so the ones that change BLAS run in a fresh interpreter.
"""

import os
import subprocess
import sys

import pytest

from tinygrad_rnn.threads import DEFAULT_THREADS, THREAD_ENV_VARS, choose_threads

threadpoolctl = pytest.importorskip("threadpoolctl")


def clean_env(**extra):
    env = {k: v for k, v in os.environ.items() if k not in THREAD_ENV_VARS}
    return {**env, **extra}


def blas_threads_after(call, **env):
    """The BLAS thread counts a fresh interpreter reports after ``call`` (Python source)."""
    code = ("from tinygrad_rnn.threads import set_blas_threads, blas_threads\n"
            f"print(repr({call}))\nprint(blas_threads())")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                          env=clean_env(**env))
    assert proc.returncode == 0, proc.stderr
    line, counts = proc.stdout.strip().splitlines()
    return line, eval(counts)


def test_choice_default_override_and_environment():
    assert DEFAULT_THREADS == 1
    n, reason = choose_threads(None, environ={})
    assert n == 1 and reason.startswith("default"), (n, reason)
    assert choose_threads(3, environ={"OPENBLAS_NUM_THREADS": "2"}) == (3, "--threads")
    n, reason = choose_threads(None, environ={"OMP_NUM_THREADS": "2"})
    assert n is None and reason == "$OMP_NUM_THREADS"
    assert choose_threads(None, environ={"OPENBLAS_NUM_THREADS": ""})[0] == 1    # empty = not set
    with pytest.raises(ValueError, match="--threads must be at least 1, got 0"):
        choose_threads(0, environ={})


def _has_blas():
    import numpy  # noqa: F401  (loads its BLAS so threadpoolctl can see it)
    return any(i.get("user_api") == "blas" for i in threadpoolctl.threadpool_info())


@pytest.mark.skipif(not _has_blas(), reason="threadpoolctl finds no BLAS library under NumPy here")
def test_set_blas_threads_limits_the_loaded_blas():
    # Without any environment variable BLAS starts with one thread per core; the default makes it one.
    line, counts = blas_threads_after("set_blas_threads()")
    assert counts and all(n == 1 for n in counts), (line, counts)
    assert line.startswith("'BLAS threads: 1 (default")
    line, counts = blas_threads_after("set_blas_threads(2)")
    assert counts and all(n == 2 for n in counts), (line, counts)
    # A count the user set by hand is left alone (and said to be).
    line, counts = blas_threads_after("set_blas_threads()", OPENBLAS_NUM_THREADS="2", OMP_NUM_THREADS="2")
    assert "set by $OPENBLAS_NUM_THREADS" in line and all(n == 2 for n in counts), (line, counts)


@pytest.mark.skipif(not _has_blas(), reason="threadpoolctl finds no BLAS library under NumPy here")
def test_examples_choose_their_threads():
    script = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                          "examples", "bptt_time_scaling.py")
    args = [sys.executable, script, "--lengths", "3,6", "--repeats", "1", "--batch", "2", "--hidden", "4"]
    for extra, expected in (([], "BLAS threads: 1 (default"), (["--threads", "2"], "BLAS threads: 2 (--threads)")):
        proc = subprocess.run(args + extra, capture_output=True, text=True, timeout=60, env=clean_env())
        assert proc.returncode == 0, proc.stderr
        assert expected in proc.stdout.splitlines()[0], proc.stdout
