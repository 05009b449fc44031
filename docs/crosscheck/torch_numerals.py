"""PyTorch cross-check of the numerals seq2seq (same data, vocab, batches, sizes, optimizer).

    python docs/crosscheck/torch_numerals.py [--single-bias] [--feed] [--seed S] [--epochs N]
        [--cell rnn|lstm|gru]                                          (needs: pip install torch)

With --cell lstm the decoder starts from the encoder's (h, c) and the forget-gate bias starts at 1
(bias_ih's f block 1, bias_hh's 0), like nn.LSTM of ours.
"""

import argparse
import time

import torch
from torch import nn

from tinygrad_rnn.data import BatchIterator, Vocab, load_numerals

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument(
    "--single-bias",
    action="store_true",
    help="one bias per cell like tinygrad_rnn's: b_hh fixed at 0 (default: PyTorch's two biases)",
)
parser.add_argument(
    "--feed",
    action="store_true",
    help="feed the encoder's last state to the decoder at every step (default: off)",
)
parser.add_argument("--seed", type=int, default=0, metavar="S", help="weights and batch order (default 0)")
parser.add_argument(
    "--epochs", type=int, default=20, metavar="N", help="passes over the training split (default 20)"
)
parser.add_argument(
    "--cell",
    choices=("rnn", "lstm", "gru"),
    default="rnn",
    help="encoder and decoder cell: nn.RNN (tanh), nn.LSTM or nn.GRU (default rnn)",
)
args = parser.parse_args()
torch.set_num_threads(1)
feed, seed, epochs, cell = args.feed, args.seed, args.epochs, args.cell
Layer = {"rnn": nn.RNN, "lstm": nn.LSTM, "gru": nn.GRU}[cell]


def top(h):
    return (h[0] if cell == "lstm" else h)[-1]  # the last layer's h (the LSTM's state is (h, c))


torch.manual_seed(seed)
train, dev, test = load_numerals("to_digits", seed=0)
src = Vocab.build(x for x, _ in train)
tgt = Vocab.build(y for _, y in train)


def batches(ex, shuffle):
    return BatchIterator(
        [src.encode(x) for x, _ in ex],
        [tgt.encode(y, add_bos=True, add_eos=True) for _, y in ex],
        batch_size=64,
        shuffle=shuffle,
        seed=seed,
        bucket=True,
    )


E, H = 32, 256


class M(nn.Module):
    def __init__(s):
        super().__init__()
        s.se = nn.Embedding(len(src), E, padding_idx=0)
        s.enc = Layer(E, H, batch_first=True)
        s.te = nn.Embedding(len(tgt), E, padding_idx=0)
        s.dec = Layer(E + (H if feed else 0), H, batch_first=True)
        s.out = nn.Linear(H, len(tgt))

    def encode(s, x, L):
        packed = nn.utils.rnn.pack_padded_sequence(
            s.se(x), torch.as_tensor(L), batch_first=True, enforce_sorted=False
        )
        _, h = s.enc(packed)
        return h

    def forward(s, x, L, yin):
        h = s.encode(x, L)
        e = s.te(yin)
        if feed:
            e = torch.cat([e, top(h)[:, None, :].expand(-1, e.shape[1], -1)], 2)
        o, _ = s.dec(e, h)
        return s.out(o)

    @torch.no_grad()
    def greedy(s, x, L, max_len=13):
        h = s.encode(x, L)
        c = top(h)
        ids = torch.full((x.shape[0],), 2)
        outs = []
        for _ in range(max_len):
            e = s.te(ids)[:, None]
            if feed:
                e = torch.cat([e, c[:, None]], 2)
            o, h = s.dec(e, h)
            ids = s.out(o[:, 0]).argmax(-1)
            outs.append(ids)
        rows = torch.stack(outs, 1).tolist()
        return [r[: r.index(3)] if 3 in r else r for r in rows]


m = M()
if cell == "lstm":
    with torch.no_grad():
        for rnn in (m.enc, m.dec):
            rnn.bias_ih_l0[H : 2 * H].fill_(1.0)
            rnn.bias_hh_l0[H : 2 * H].zero_()
if args.single_bias:  # one bias per cell, like tinygrad_rnn's RNNCell: b = b_ih, b_hh fixed at 0
    for rnn in (m.enc, m.dec):
        rnn.bias_hh_l0.data.zero_()
        rnn.bias_hh_l0.requires_grad_(False)
opt = torch.optim.Adam([p for p in m.parameters() if p.requires_grad], lr=1e-3)
lossf = nn.CrossEntropyLoss(ignore_index=0)


def score(it):
    ok = n = 0
    for b in it:
        for out, row, k in zip(m.greedy(torch.as_tensor(b.inputs), b.lengths), b.targets, b.target_lengths):
            ok += out == row[1 : k - 1].tolist()
            n += 1
    return ok / n


tr = batches(train, True)
best = (-1, 0, 0)
for ep in range(epochs):
    tr.set_epoch(ep)
    t = time.time()
    tot = 0
    for b in tr:
        x = torch.as_tensor(b.inputs)
        y = torch.as_tensor(b.targets)
        loss = lossf(m(x, b.lengths, y[:, :-1]).reshape(-1, len(tgt)), y[:, 1:].reshape(-1))
        opt.zero_grad()
        loss.backward()
        nn.utils.clip_grad_norm_(m.parameters(), 1.0)
        opt.step()
        tot += loss.item()
    d = score(batches(dev, False))
    if d > best[0]:
        best = (d, ep + 1, score(batches(test, False)))
    print(f"epoch {ep + 1} loss {tot / len(tr):.4f} dev {d:.4f} {time.time() - t:.1f}s", flush=True)
print(f"{cell}: best dev {best[0]:.4f} at epoch {best[1]}, test exact match {best[2]:.4f}")
