"""PyTorch on the cure experiment's adding problem (same batches and test set as `bptt experiment`).

usage: python docs/crosscheck/torch_adding.py --cell rnn|lstm|gru --length T [--steps 3000]
           [--init ours|torch] [--forget-bias B|none|chrono] [--seed 0] [--hidden 64]

--init ours (default): the initial weights of our AddingRNN (seed, hidden 64) copied into torch's
nn.RNN/LSTM/GRU + Linear (one bias: bias_ih = b, bias_hh = 0, fixed; the GRU's b_hn as the n block
of bias_hh) — same weights, same batches: a different curve would be a bug on one side.
--init torch: PyTorch's own initialisation (torch.manual_seed(seed)); with --cell lstm the forget
bias is then PyTorch's unless --forget-bias is given. --forget-bias chrono: chrono initialisation,
b_f = log U(1, T - 1) and b_i = -b_f (ours drawn by nn.chrono_init_, or by torch's generator with
--init torch). Adam 1e-3, clip 1.0, batch 64, float32, test MSE on the same 1,000 sequences every
100 steps; solved = test MSE < 0.05.
"""

import argparse
import time

import numpy as np
import torch
from torch import nn

from tinygrad_rnn.bptt.experiment import LEARNED_MSE, AddingRNN
from tinygrad_rnn.data.adding import adding_problem

torch.set_num_threads(1)


def forget_bias(text):
    """--forget-bias as given (a number, 'none' or 'chrono'), refused here rather than by float() later."""
    if text not in ("none", "chrono"):
        try:
            float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"a number, 'none' or 'chrono', not {text!r}") from None
    return text


a = argparse.ArgumentParser(description=__doc__.splitlines()[0])
a.add_argument(
    "--cell",
    choices=["rnn", "lstm", "gru"],
    required=True,
    help="nn.RNN (tanh), nn.LSTM or nn.GRU (no default: required)",
)
a.add_argument(
    "--length",
    type=int,
    required=True,
    metavar="T",
    help="sequence length T of the adding problem (no default: required)",
)
a.add_argument("--steps", type=int, default=3000, help="training steps of batch 64 (default 3000)")
a.add_argument(
    "--init",
    choices=["ours", "torch"],
    default="ours",
    help="initial weights: our AddingRNN's copied over, or PyTorch's own (default ours)",
)
a.add_argument(
    "--forget-bias",
    type=forget_bias,
    default=None,
    metavar="B|none|chrono",
    help="LSTM b_f at the start: a number, 'none' or 'chrono' (default: 1 with "
    "--init ours, PyTorch's with --init torch)",
)
a.add_argument("--seed", type=int, default=0, help="weights and batch order (default 0)")
a.add_argument("--hidden", type=int, default=64, help="hidden size H (default 64)")
args = a.parse_args()
H, T = args.hidden, args.length
torch.manual_seed(args.seed)
Layer = {"rnn": nn.RNN, "lstm": nn.LSTM, "gru": nn.GRU}[args.cell]
rnn, head = Layer(2, H, batch_first=True), nn.Linear(H, 1)
if args.forget_bias in (None, "none", "chrono"):
    fb = None if args.forget_bias == "none" else args.forget_bias
else:
    fb = float(args.forget_bias)
if args.init == "ours":
    ours = AddingRNN(
        H,
        cell=args.cell,
        forget_bias=1.0 if args.forget_bias is None else fb,
        length=T,
        rng=np.random.default_rng(args.seed),
        dtype=np.float32,
    )
    c = ours.rnn.cells[0]
    with torch.no_grad():
        rnn.weight_ih_l0.copy_(torch.tensor(c.W.numpy()).T)
        rnn.weight_hh_l0.copy_(torch.tensor(c.V.numpy()).T)
        rnn.bias_ih_l0.copy_(torch.tensor(c.b.numpy()))
        rnn.bias_hh_l0.zero_()
        if args.cell == "gru":
            rnn.bias_hh_l0[2 * H :].copy_(torch.tensor(c.b_hn.numpy()))
        head.weight.copy_(torch.tensor(ours.head.W.numpy()).T)
        head.bias.copy_(torch.tensor(ours.head.b.numpy()))
    # one bias like ours: bias_hh stays zero (the GRU's n block is b_hn and is trained)
    if args.cell == "gru":
        keep = torch.zeros(3 * H)
        keep[2 * H :] = 1
        rnn.bias_hh_l0.register_hook(lambda g: g * keep)
    else:
        rnn.bias_hh_l0.requires_grad_(False)
elif args.cell == "lstm" and fb == "chrono":
    with torch.no_grad():
        b_f = torch.log(torch.empty(H).uniform_(1, T - 1))
        rnn.bias_ih_l0[H : 2 * H].copy_(b_f)
        rnn.bias_ih_l0[:H].copy_(-b_f)
        rnn.bias_hh_l0[: 2 * H].zero_()
elif args.cell == "lstm" and fb is not None:
    with torch.no_grad():
        rnn.bias_ih_l0[H : 2 * H].fill_(fb)
        rnn.bias_hh_l0[H : 2 * H].zero_()
params = [p for p in list(rnn.parameters()) + list(head.parameters()) if p.requires_grad]
opt = torch.optim.Adam(params, lr=1e-3)


def predict(x):
    _, h = rnn(torch.as_tensor(x))
    return head((h[0] if args.cell == "lstm" else h)[-1])


x_test, y_test = adding_problem(1000, T, seed=10_000_000 + T, dtype=np.float32)
if args.init == "ours":
    from tinygrad_rnn.tensor import Tensor

    with torch.no_grad():
        gap = np.abs(predict(x_test[:64]).numpy() - ours(Tensor(x_test[:64])).numpy()).max()
    assert gap < 1e-4, f"torch and ours disagree at init by {gap}"
    print(f"same weights: outputs agree to {gap:.1e}", flush=True)
solved, start = None, time.time()
for step in range(1, args.steps + 1):
    x, y = adding_problem(64, T, seed=1 + args.seed * 1_000_003 + step - 1, dtype=np.float32)
    loss = ((predict(x) - torch.as_tensor(y)) ** 2).mean()
    opt.zero_grad()
    loss.backward()
    nn.utils.clip_grad_norm_(params, 1.0)
    opt.step()
    if step % 100 == 0:
        with torch.no_grad():
            test = float(((predict(x_test) - torch.as_tensor(y_test)) ** 2).mean())
        solved = solved or (step if test < LEARNED_MSE else None)
        print(f"step {step} test MSE {test:.4f}" + (f" (solved at {solved})" if solved else ""), flush=True)
print(
    f"torch {args.cell} T={T} init {args.init}"
    + (f" forget bias {args.forget_bias}" if args.forget_bias else "")
    + f": test MSE {test:.4f}, "
    + (f"solved at step {solved}" if solved else "not solved")
    + f", {time.time() - start:.0f} s"
)
