import numpy as np

import tinygrad_rnn as tg
from tinygrad_rnn.gradcheck import gradcheck


def test_unrolled_cell_gradcheck():
    from tinygrad_rnn.demo import unrolled_loss
    rng = np.random.default_rng(1)
    params = [tg.Tensor(rng.normal(0, 0.5, s), requires_grad=True) for s in [(2, 4, 3), (3, 4), (4, 4), (4,), (2, 4)]]
    assert gradcheck(unrolled_loss, params, mode="full", seed=1)
