"""Same initial weights in tinygrad_rnn and PyTorch (single bias): do the loss curves agree?

    python docs/crosscheck/torch_same_init.py [STEPS]      (default 300; needs: pip install torch)

Prints both training losses and the largest difference of the encoder's V at steps 1-3 and every
50 steps. What holds from run to run: the losses agree to six digits for roughly the first 150
steps; after that float32 rounding, which differs between the two frameworks' kernels, drifts
them apart slowly, so by step 400 they agree to four or five digits and the largest weight
difference is of order 1e-4. The exact late figures vary between runs and machines.
"""

import argparse
import sys

import numpy as np
import torch
from torch import nn

import tinygrad_rnn as tg
from tinygrad_rnn.data import BatchIterator, Vocab, load_numerals
from tinygrad_rnn.models import Seq2Seq
from tinygrad_rnn.optim import Adam, clip_grad_norm_
from tinygrad_rnn.train import Seq2SeqTask


def step_count(text):
    """STEPS as the command line gives it: digits only (400), as before argparse."""
    if not text.isdigit():
        raise argparse.ArgumentTypeError(f"not a non-negative integer: {text!r}")
    return int(text)


parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument(
    "steps",
    nargs="?",
    type=step_count,
    default=300,
    metavar="STEPS",
    help="training steps of both models; losses printed at steps 1-3 and every 50 (default 300)",
)
steps = parser.parse_args().steps
torch.set_num_threads(1)
train, dev, test = load_numerals("to_digits", seed=0)
src = Vocab.build(x for x, _ in train)
tgt = Vocab.build(y for _, y in train)
it = BatchIterator(
    [src.encode(x) for x, _ in train],
    [tgt.encode(y, add_bos=True, add_eos=True) for _, y in train],
    batch_size=64,
    seed=0,
    bucket=True,
)
tg.manual_seed(0)
ours = Seq2Seq(len(src), len(tgt), 32, 256)
T = lambda a: torch.tensor(a.numpy())


class M(nn.Module):
    def __init__(s):
        super().__init__()
        s.se = nn.Embedding(len(src), 32, padding_idx=0)
        s.enc = nn.RNN(32, 256, batch_first=True)
        s.te = nn.Embedding(len(tgt), 32, padding_idx=0)
        s.dec = nn.RNN(32, 256, batch_first=True)
        s.out = nn.Linear(256, len(tgt))

    def forward(s, x, L, yin):
        packed = nn.utils.rnn.pack_padded_sequence(
            s.se(x), torch.as_tensor(L), batch_first=True, enforce_sorted=False
        )
        _, h = s.enc(packed)
        o, _ = s.dec(s.te(yin), h)
        return s.out(o)


m = M()
with torch.no_grad():
    m.se.weight.copy_(T(ours.src_embed.weight))
    m.te.weight.copy_(T(ours.tgt_embed.weight))
    for r, c in ((m.enc, ours.encoder.cells[0]), (m.dec, ours.decoder.cells[0])):
        r.weight_ih_l0.copy_(T(c.W).T)
        r.weight_hh_l0.copy_(T(c.V).T)
        r.bias_ih_l0.copy_(T(c.b))
        r.bias_hh_l0.zero_()
        r.bias_hh_l0.requires_grad_(False)
    m.out.weight.copy_(T(ours.out.W).T)
    m.out.bias.copy_(T(ours.out.b))
opt_t = torch.optim.Adam([p for p in m.parameters() if p.requires_grad], lr=1e-3)
opt_o = Adam(ours.parameters(), lr=1e-3)
task = Seq2SeqTask(max_len=13)
lossf = nn.CrossEntropyLoss(ignore_index=0)
step = 0
for epoch in range(100):
    it.set_epoch(epoch)
    for b in it:
        lo = task.loss(ours, b)
        opt_o.zero_grad()
        lo.backward()
        clip_grad_norm_(ours.parameters(), 1.0)
        opt_o.step()
        x = torch.as_tensor(b.inputs)
        y = torch.as_tensor(b.targets)
        lt = lossf(m(x, b.lengths, y[:, :-1]).reshape(-1, len(tgt)), y[:, 1:].reshape(-1))
        opt_t.zero_grad()
        lt.backward()
        nn.utils.clip_grad_norm_(m.parameters(), 1.0)
        opt_t.step()
        step += 1
        if step % 50 == 0 or step <= 3:
            diff = max(
                float(np.abs(ours.encoder.cells[0].V.numpy() - m.enc.weight_hh_l0.detach().numpy().T).max()),
                0,
            )
            print(
                f"step {step}: ours {lo.item():.6f}  torch {lt.item():.6f}  max |ΔV_enc| {diff:.2e}",
                flush=True,
            )
        if step >= steps:
            sys.exit()
