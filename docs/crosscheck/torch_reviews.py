"""PyTorch on the same reviews split/vocab/batches: nn.RNN (tanh), Adam 1e-3, clip 1.0, 10 epochs.

    python docs/crosscheck/torch_reviews.py last|mean SEED      (needs: pip install torch)
"""
import sys, numpy as np
USAGE = "usage: python docs/crosscheck/torch_reviews.py last|mean SEED   (e.g. mean 0; needs: pip install torch)"
if len(sys.argv) != 3 or sys.argv[1] not in ("last", "mean") or not sys.argv[2].isdigit(): sys.exit(USAGE)
import torch
from torch import nn
from tinygrad_rnn.runs import load_splits
from tinygrad_rnn.data import Vocab, BatchIterator
torch.set_num_threads(1)
pooling, seed = sys.argv[1], int(sys.argv[2])
torch.manual_seed(seed)
config = {"data": "reviews", "max_len": 100, "limit": None}
train, dev, test = load_splits(config)
v = Vocab.build(x for x, _ in train)
def it(ex, shuffle): return BatchIterator([v.encode(x) for x, _ in ex], [y for _, y in ex], batch_size=64, shuffle=shuffle, seed=seed, bucket=True)
class M(nn.Module):
    def __init__(s):
        super().__init__(); s.e = nn.Embedding(len(v), 64, padding_idx=0); s.r = nn.RNN(64, 128, batch_first=True); s.o = nn.Linear(128, 2)
    def forward(s, x, L):
        L = torch.as_tensor(L)
        packed = nn.utils.rnn.pack_padded_sequence(s.e(x), L, batch_first=True, enforce_sorted=False)
        out, h = s.r(packed)
        if pooling == "last": return s.o(h[-1])
        out, _ = nn.utils.rnn.pad_packed_sequence(out, batch_first=True)
        return s.o(out.sum(1) / L[:, None])
m = M(); opt = torch.optim.Adam(m.parameters(), lr=1e-3)
@torch.no_grad()
def acc(ex):
    ok = n = 0
    for b in it(ex, False):
        ok += int((m(torch.as_tensor(b.inputs), b.lengths).argmax(1).numpy() == b.targets).sum()); n += len(b.targets)
    return ok / n
tr = it(train, True); best = (-1, 0, 0)
for ep in range(10):
    tr.set_epoch(ep)
    for b in tr:
        loss = nn.functional.cross_entropy(m(torch.as_tensor(b.inputs), b.lengths), torch.as_tensor(b.targets))
        opt.zero_grad(); loss.backward(); nn.utils.clip_grad_norm_(m.parameters(), 1.0); opt.step()
    d = acc(dev)
    if d > best[0]: best = (d, ep + 1, acc(test))
    print(f"epoch {ep+1} dev {d:.4f}", flush=True)
print(f"{pooling} seed {seed}: best dev {best[0]:.4f} at epoch {best[1]}, test accuracy {best[2]:.4f}")
