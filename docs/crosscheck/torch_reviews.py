"""PyTorch, same reviews split/vocab/batches: nn.RNN (tanh), nn.LSTM, nn.GRU; Adam 1e-3, clip 1.0, 10 epochs.

    python docs/crosscheck/torch_reviews.py last|mean SEED [--cell rnn|lstm|gru]    (needs: pip install torch)

The LSTM's forget-gate bias starts at 1 (bias_ih's f block 1, bias_hh's 0), like nn.LSTM of ours.
"""

import argparse

from tinygrad_rnn.data import BatchIterator, Vocab
from tinygrad_rnn.runs import load_splits


def seed_number(text):
    """A seed as the command line gives it: digits only (0, 1, 42), as before argparse."""
    if not text.isdigit():
        raise argparse.ArgumentTypeError(f"not a non-negative integer: {text!r}")
    return int(text)


parser = argparse.ArgumentParser(
    description=__doc__.splitlines()[0], epilog="example: python docs/crosscheck/torch_reviews.py mean 0"
)
parser.add_argument(
    "pooling",
    choices=("last", "mean"),
    help="classify from the last state or the mean of the states (no default: required)",
)
parser.add_argument(
    "seed", type=seed_number, metavar="SEED", help="weights and batch order (no default: required)"
)
parser.add_argument(
    "--cell",
    choices=("rnn", "lstm", "gru"),
    default="rnn",
    help="nn.RNN (tanh), nn.LSTM or nn.GRU (default rnn)",
)
args = parser.parse_args()
cell = args.cell
import torch
from torch import nn

torch.set_num_threads(1)
pooling, seed = args.pooling, args.seed
torch.manual_seed(seed)
config = {"data": "reviews", "max_len": 100, "limit": None}
train, dev, test = load_splits(config)
v = Vocab.build(x for x, _ in train)


def it(ex, shuffle):
    return BatchIterator(
        [v.encode(x) for x, _ in ex],
        [y for _, y in ex],
        batch_size=64,
        shuffle=shuffle,
        seed=seed,
        bucket=True,
    )


class M(nn.Module):
    def __init__(s):
        super().__init__()
        s.e = nn.Embedding(len(v), 64, padding_idx=0)
        s.r = {"rnn": nn.RNN, "lstm": nn.LSTM, "gru": nn.GRU}[cell](64, 128, batch_first=True)
        s.o = nn.Linear(128, 2)
        if cell == "lstm":
            with torch.no_grad():
                s.r.bias_ih_l0[128:256].fill_(1.0)
                s.r.bias_hh_l0[128:256].zero_()

    def forward(s, x, L):
        L = torch.as_tensor(L)
        packed = nn.utils.rnn.pack_padded_sequence(s.e(x), L, batch_first=True, enforce_sorted=False)
        out, h = s.r(packed)
        if cell == "lstm":
            h = h[0]
        if pooling == "last":
            return s.o(h[-1])
        out, _ = nn.utils.rnn.pad_packed_sequence(out, batch_first=True)
        return s.o(out.sum(1) / L[:, None])


m = M()
opt = torch.optim.Adam(m.parameters(), lr=1e-3)


@torch.no_grad()
def acc(ex):
    ok = n = 0
    for b in it(ex, False):
        ok += int((m(torch.as_tensor(b.inputs), b.lengths).argmax(1).numpy() == b.targets).sum())
        n += len(b.targets)
    return ok / n


tr = it(train, True)
best = (-1, 0, 0)
for ep in range(10):
    tr.set_epoch(ep)
    for b in tr:
        loss = nn.functional.cross_entropy(
            m(torch.as_tensor(b.inputs), b.lengths), torch.as_tensor(b.targets)
        )
        opt.zero_grad()
        loss.backward()
        nn.utils.clip_grad_norm_(m.parameters(), 1.0)
        opt.step()
    d = acc(dev)
    if d > best[0]:
        best = (d, ep + 1, acc(test))
    print(f"epoch {ep + 1} dev {d:.4f}", flush=True)
print(f"{cell} {pooling} seed {seed}: best dev {best[0]:.4f} at epoch {best[1]}, test accuracy {best[2]:.4f}")
