"""The BLAS thread count: one by default, --threads N to override, a count set in the environment kept.

The limits are process-wide, so the ones that change BLAS run in a fresh interpreter.
"""

import os
import platform
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
    code = (
        "from tinygrad_rnn.threads import set_blas_threads, blas_threads\n"
        f"print(repr({call}))\nprint(blas_threads())"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, env=clean_env(**env)
    )
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
    assert choose_threads(None, environ={"OPENBLAS_NUM_THREADS": ""})[0] == 1  # empty = not set
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
    script = os.path.join(
        os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "examples", "bptt_time_scaling.py"
    )
    args = [sys.executable, script, "--lengths", "3,6", "--repeats", "1", "--batch", "2", "--hidden", "4"]
    for extra, expected in (
        ([], "BLAS threads: 1 (default"),
        (["--threads", "2"], "BLAS threads: 2 (--threads)"),
    ):
        proc = subprocess.run(args + extra, capture_output=True, text=True, timeout=60, env=clean_env())
        assert proc.returncode == 0, proc.stderr
        assert expected in proc.stdout.splitlines()[0], proc.stdout


# ---- glibc's malloc thresholds ----------------------------------------------------------------------

GLIBC = sys.platform.startswith("linux") and platform.libc_ver()[0] == "glibc"

# A fixed workload: each "step" allocates eight (64, 50, 128) float32 arrays (1.6 MB, a medium
# bench step's (B, T, H) gradient) and frees them; prints the minor page faults per step.
FAULTS = """
import resource, sys
import numpy as np
from tinygrad_rnn.threads import tune_malloc
tuned = tune_malloc() if sys.argv[1] == "tuned" else None
def step():
    arrays = [np.ones((64, 50, 128), np.float32) for _ in range(8)]
    return sum(float(a[0, 0, 0]) for a in arrays)
for _ in range(3):
    step()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(10):
    step()
print(tuned, (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before) / 10)
"""


def faults_per_step(mode, **env):
    proc = subprocess.run(
        [sys.executable, "-c", FAULTS, mode],
        capture_output=True,
        text=True,
        timeout=60,
        env={**{k: v for k, v in os.environ.items() if not k.startswith("MALLOC_")}, **env},
    )
    assert proc.returncode == 0, proc.stderr
    tuned, faults = proc.stdout.split()
    return tuned, float(faults)


@pytest.mark.skipif(not GLIBC, reason="mallopt's thresholds are glibc's")
def test_tune_malloc_keeps_freed_memory_for_the_next_step():
    default, tuned = faults_per_step("default"), faults_per_step("tuned")
    assert default[0] == "None" and tuned[0] == "True", (default, tuned)
    # 8 arrays × 1.6 MB are 3,200 pages: by default glibc gives them back and faults them in again
    # every step; with the thresholds raised the heap keeps them.
    assert default[1] >= 1000, f"the default allocator faulted only {default[1]} pages per step"
    assert tuned[1] <= default[1] / 10, f"page faults per step: {tuned[1]} tuned, {default[1]} by default"


@pytest.mark.skipif(not GLIBC, reason="mallopt's thresholds are glibc's")
def test_tune_malloc_leaves_a_threshold_the_user_set():
    # A trim threshold of 0 set by the user: glibc trims at every free, and tune_malloc keeps it so.
    tuned, faults = faults_per_step("tuned", MALLOC_TRIM_THRESHOLD_="0", MALLOC_MMAP_THRESHOLD_="65536")
    assert tuned == "True" and faults >= 1000, (tuned, faults)


def test_tune_malloc_is_a_no_op_without_glibc(monkeypatch):
    from tinygrad_rnn import threads

    monkeypatch.setattr(threads.sys, "platform", "darwin")
    assert threads.tune_malloc() is False
