"""How many threads NumPy's BLAS may use: one, unless you say otherwise.

Training here multiplies small matrices — one step of the review classifier is
``(64, 128) @ (128, 128)`` — thousands of times per epoch. A product that size takes a few tens
of microseconds on one core; splitting it over two threads costs a hand-off and a wait per call,
which is about as long as the work it saves, and when anything else runs on the machine the
second thread waits for a core and the product waits for it. On this project's shared 2-core
machine one thread won every measurement (docs/performance.md, "BLAS threads: why one"): up to
20× per product and 17× per training epoch under load. So the command line, the examples and
``bptt experiment`` call :func:`set_blas_threads` before they start; ``--threads N`` chooses
another count.

The count is set on the BLAS NumPy has already loaded, through ``threadpoolctl``; environment
variables such as ``OPENBLAS_NUM_THREADS`` would have to be set before NumPy is imported, which a
command cannot do for itself. A count the user set in one of those variables is respected.

The other process-wide choice made here is :func:`tune_malloc`, which keeps glibc's allocator from
handing each training step's memory back to the operating system only to fault it in again.
Both belong to whoever owns the process (the command line, an example, the benchmark), never to
an import of the library.
"""

from __future__ import annotations

import argparse
import ctypes
import os
import sys

DEFAULT_THREADS = 1
# Variables through which a user may already have chosen a thread count for BLAS.
THREAD_ENV_VARS = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS", "BLIS_NUM_THREADS")

_limiter = None  # the active threadpoolctl limit (kept so it stays in force for the whole run)


def choose_threads(requested: int | None = None, environ=None) -> tuple[int | None, str]:
    """The thread count to use and why: ``(n, reason)``; ``n`` is None to leave BLAS as it is.

    ``--threads N`` wins; otherwise a count set in the environment (``OPENBLAS_NUM_THREADS`` …)
    is kept; otherwise :data:`DEFAULT_THREADS`.
    """
    if requested is not None:
        if requested < 1:
            raise ValueError(f"--threads must be at least 1, got {requested}")
        return requested, "--threads"
    environ = os.environ if environ is None else environ
    for name in THREAD_ENV_VARS:
        if environ.get(name, "").strip():
            return None, f"${name}"
    return DEFAULT_THREADS, "default: one thread is fastest for these small products"


def set_blas_threads(requested: int | None = None) -> str:
    """Limit BLAS to :func:`choose_threads`' count for the rest of the process; returns one line
    saying what BLAS now uses and why (e.g. ``BLAS threads: 1 (default: …)``)."""
    global _limiter
    n, reason = choose_threads(requested)
    if n is None:
        return f"BLAS threads: {_describe(blas_threads())} (set by {reason})"
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        return (
            f"BLAS threads: left as they are ({n} wanted; pip install threadpoolctl, "
            f"a dependency of tinygrad-rnn, sets them)"
        )
    _limiter = threadpool_limits(limits=n, user_api="blas")
    return f"BLAS threads: {_describe(blas_threads())} ({reason})"


def blas_threads() -> list[int]:
    """The thread count of every BLAS library loaded in this process (empty when unknown)."""
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return []
    return [info["num_threads"] for info in threadpool_info() if info.get("user_api") == "blas"]


def _describe(counts: list[int]) -> str:
    return ", ".join(str(n) for n in counts) or "unknown"


def positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def add_threads_argument(parser: argparse.ArgumentParser) -> None:
    """``--threads N`` with its help line, for every command that trains or times something."""
    parser.add_argument(
        "--threads",
        type=positive_int,
        default=None,
        metavar="N",
        help=f"BLAS threads for NumPy (default {DEFAULT_THREADS}, or what "
        f"$OPENBLAS_NUM_THREADS/$OMP_NUM_THREADS say: one thread is fastest "
        f"for these small matrix products)",
    )


# ---- glibc's malloc thresholds ---------------------------------------------------------------------

# mallopt's parameter numbers (glibc's <malloc.h>).
M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
# 32 MiB is the largest mmap threshold glibc accepts on 64-bit systems (mallopt refuses more); the
# trim threshold is how much free memory at the top of the heap glibc keeps before giving it back.
MMAP_THRESHOLD = 32 * 2**20
TRIM_THRESHOLD = 256 * 2**20
MALLOC_ENV_VARS = ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_")


def tune_malloc(mmap_threshold: int = MMAP_THRESHOLD, trim_threshold: int = TRIM_THRESHOLD) -> bool:
    """Keep freed memory in the process from one training step to the next (glibc only).

    Every step allocates its activations and gradients afresh and frees them when the backward
    pass ends. By default glibc serves blocks above a (self-adjusting, at most 32 MiB) size with
    their own ``mmap`` and unmaps them on ``free``, and gives the top of the heap back to the
    operating system once more than the trim threshold lies free there. Either way the next step
    asks for the same memory again and touches every page of it: a page fault each, a few
    microseconds of kernel time apiece — thousands per LSTM step at T = 200 (docs/performance.md,
    "Page faults"). Raising both thresholds keeps the memory in the heap, where the next step
    reuses it with no fault; a process's resident size stays at its largest step's, which it
    reaches anyway.

    Calls ``mallopt(M_MMAP_THRESHOLD, mmap_threshold)`` and ``mallopt(M_TRIM_THRESHOLD,
    trim_threshold)`` through ctypes. A threshold the user chose in ``MALLOC_MMAP_THRESHOLD_`` /
    ``MALLOC_TRIM_THRESHOLD_`` (read by glibc at start-up) is left as it is. Returns True when
    both thresholds are now raised (by this call or by those variables); False, changing nothing,
    where the C library is not glibc (macOS, Windows, musl) or refuses a value.
    """
    if not sys.platform.startswith("linux"):
        return False  # glibc is a Linux C library
    try:
        libc = ctypes.CDLL(None)
        libc.gnu_get_libc_version  # only glibc has it: musl's mallopt does nothing
        mallopt = libc.mallopt
    except (AttributeError, OSError):
        return False
    mallopt.argtypes, mallopt.restype = (ctypes.c_int, ctypes.c_int), ctypes.c_int
    ok = True
    for env, param, value in (
        (MALLOC_ENV_VARS[0], M_MMAP_THRESHOLD, mmap_threshold),
        (MALLOC_ENV_VARS[1], M_TRIM_THRESHOLD, trim_threshold),
    ):
        if not os.environ.get(env, "").strip():
            ok = mallopt(param, value) == 1 and ok
    return ok
