"""The gradient-check kit: check your own op in one call, with the strategies the test suite uses.

::

    from tinygrad_rnn.testing import check_op
    check_op(MyOp, reference=my_numpy_function)        # forward, backward, gradcheck on drawn inputs

* :func:`check_op` — an op or a function of tensors on many inputs drawn by Hypothesis:
  forward against a NumPy reference, gradients as device arrays, ``gradcheck`` in both modes;
* :mod:`.strategies` — the Hypothesis strategies behind it (shapes, broadcastable shapes, float64
  arrays kept away from kinks and poles, ids, padded sequences), all re-exported here;
* :func:`gradcheck`, :class:`GradcheckError` (a wrong gradient) and
  :class:`GradcheckInconclusive` (outputs too large for finite differences at that eps to
  decide), from :mod:`tinygrad_rnn.gradcheck`.

What each check catches and misses, with its tolerances and draw ranges, and how to widen them:
:mod:`tinygrad_rnn.testing.check`.

Needs Hypothesis: ``pip install -e '.[testing]'`` from the clone. The rest of tinygrad_rnn does not.
"""

try:
    import hypothesis  # noqa: F401
except ImportError as e:  # say which install fixes it, instead of a bare "No module named"
    raise ImportError(
        "tinygrad_rnn.testing needs Hypothesis, which is not installed: "
        "pip install -e '.[testing]' from the clone's root (or pip install hypothesis)"
    ) from e

from ..gradcheck import GradcheckError, GradcheckInconclusive, gradcheck
from . import strategies
from .check import CheckResult, check_op
from .strategies import (
    GAP,
    Sequences,
    axes,
    broadcastable_shapes,
    distinct_floats,
    examples,
    float_arrays,
    float_sequences,
    floats,
    id_arrays,
    lengths,
    nonzero_floats,
    positive_floats,
    shapes,
    token_sequences,
)

__all__ = [
    "check_op",
    "CheckResult",
    "gradcheck",
    "GradcheckError",
    "GradcheckInconclusive",
    "strategies",
    "GAP",
    "Sequences",
    "axes",
    "broadcastable_shapes",
    "distinct_floats",
    "examples",
    "float_arrays",
    "float_sequences",
    "floats",
    "id_arrays",
    "lengths",
    "nonzero_floats",
    "positive_floats",
    "shapes",
    "token_sequences",
]
