"""PyTorch cross-check of the attention Seq2Seq (same data, splits, vocab, batches, sizes, optimizer).

    python docs/crosscheck/torch_attention.py numerals|pinyin [--cell rnn|gru] [--uni] [--seed S]
        [--epochs N] [--limit N] [--dropout P]

The model of tinygrad_rnn.models.Seq2Seq(attention="additive"): a (bidirectional) nn.RNN (tanh) or
nn.GRU encoder over packed sequences; s_0 = tanh([h_fwd_last ; h_bwd_first] W_0 + b_0) (or the encoder's
last state); score_j = vᵀ tanh(s_{t-1} W_s + h_j U_h) masked to the source length; c_t = Σ α_j h_j;
an nn.RNNCell (or nn.GRUCell) decoder on [e(y_{t-1}) ; c_t]; logits from [s_t ; c_t]. PyTorch's own
initialisation (its RNN cells have two biases). Adam 1e-3, clip 1.0, batch 64; test exact match at
the best dev epoch, greedy decoding. ``--dropout P``: nn.Dropout(P) where Seq2Seq(dropout=P) drops
— on the embedded source tokens, on the embedded previous token e(y_{t-1}) and on [s_t ; c_t]
before the output layer — in training only (greedy decoding runs in eval mode).
"""

import argparse
import time

import torch
from torch import nn

from tinygrad_rnn.data import BatchIterator, Vocab, load_numerals, load_pinyin, train_dev_test_split


def probability(text):
    """--dropout's value: a probability of dropping an element, so 1 (drop everything) is refused."""
    p = float(text)
    if not 0 <= p < 1:
        raise argparse.ArgumentTypeError(f"must be in [0, 1), got {text}")
    return p


parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("data", choices=("numerals", "pinyin"))
parser.add_argument(
    "--cell",
    choices=("rnn", "gru"),
    default="rnn",
    help="encoder and decoder cell: rnn (tanh) or gru (default rnn)",
)
parser.add_argument("--uni", action="store_true", help="unidirectional encoder (default: bidirectional)")
parser.add_argument("--seed", type=int, default=0, help="weights and batch order (default 0)")
parser.add_argument("--epochs", type=int, default=20, help="passes over the training split (default 20)")
parser.add_argument(
    "--limit", type=int, default=None, help="about N examples in all, for quick runs (default: all)"
)
parser.add_argument(
    "--dropout",
    type=probability,
    default=0.0,
    metavar="P",
    help="dropout probability on the embeddings and the output layer's input (default 0: none)",
)
args = parser.parse_args()
data, cell, bidirectional = args.data, args.cell, not args.uni
seed, epochs, limit = args.seed, args.epochs, args.limit
torch.set_num_threads(1)
torch.manual_seed(seed)
if data == "numerals":
    train, dev, test = load_numerals(
        "to_digits",
        *((50_000, 5_000, 5_000) if limit is None else (limit * 8 // 10, limit // 10, limit // 10)),
        seed=0,
    )
    E = 32
else:
    train, dev, test = train_dev_test_split(load_pinyin(), seed=0, key=lambda ex: tuple(ex[0]))
    if limit is not None:
        train, dev, test = train[: limit * 8 // 10], dev[: limit // 10], test[: limit // 10]
    E = 64
H, D = 256, 2 if bidirectional else 1
src, tgt = Vocab.build(x for x, _ in train), Vocab.build(y for _, y in train)
MAX_LEN = max(len(y) for _, y in train) + 5


def batches(examples, shuffle):
    return BatchIterator(
        [src.encode(x) for x, _ in examples],
        [tgt.encode(y, add_bos=True, add_eos=True) for _, y in examples],
        batch_size=64,
        shuffle=shuffle,
        seed=seed,
        bucket=True,
    )


class AttentionSeq2Seq(nn.Module):
    def __init__(self):
        super().__init__()
        self.src_embed = nn.Embedding(len(src), E, padding_idx=0)
        self.encoder = (nn.GRU if cell == "gru" else nn.RNN)(
            E, H, batch_first=True, bidirectional=bidirectional
        )
        self.tgt_embed = nn.Embedding(len(tgt), E, padding_idx=0)
        self.decoder = (nn.GRUCell if cell == "gru" else nn.RNNCell)(E + D * H, H)
        self.out = nn.Linear(H + D * H, len(tgt))
        self.bridge = nn.Linear(2 * H, H) if bidirectional else None
        self.W_s = nn.Linear(H, H, bias=False)
        self.U_h = nn.Linear(D * H, H, bias=False)
        self.v = nn.Linear(H, 1, bias=False)
        self.dropout = nn.Dropout(args.dropout)  # no parameters: the weights drawn are the same

    def encode(self, x, lengths):
        lengths = torch.as_tensor(lengths)
        packed = nn.utils.rnn.pack_padded_sequence(
            self.dropout(self.src_embed(x)), lengths, batch_first=True, enforce_sorted=False
        )
        out, h = self.encoder(packed)
        out, _ = nn.utils.rnn.pad_packed_sequence(out, batch_first=True, total_length=x.shape[1])
        s = torch.tanh(self.bridge(torch.cat([h[0], h[1]], 1))) if bidirectional else h[-1]
        mask = torch.arange(x.shape[1])[None, :] < lengths[:, None]
        return s, out, self.U_h(out), mask

    def attend(self, s, values, keys, mask):
        score = self.v(torch.tanh(keys + self.W_s(s)[:, None, :]))[..., 0]
        alpha = torch.softmax(score.masked_fill(~mask, float("-inf")), dim=1)
        return torch.bmm(alpha[:, None, :], values)[:, 0], alpha

    def step(self, y_prev, s, memory):
        c, _ = self.attend(s, *memory)
        s = self.decoder(torch.cat([self.dropout(self.tgt_embed(y_prev)), c], 1), s)
        return self.out(self.dropout(torch.cat([s, c], 1))), s

    def forward(self, x, lengths, y_in):
        s, *memory = self.encode(x, lengths)
        logits = []
        for t in range(y_in.shape[1]):
            step_logits, s = self.step(y_in[:, t], s, memory)
            logits.append(step_logits)
        return torch.stack(logits, 1)

    @torch.no_grad()
    def greedy(self, x, lengths):
        s, *memory = self.encode(x, lengths)
        ids, outs = torch.full((x.shape[0],), tgt.bos_id), []
        for _ in range(MAX_LEN):
            step_logits, s = self.step(ids, s, memory)
            ids = step_logits.argmax(-1)
            outs.append(ids)
        rows = torch.stack(outs, 1).tolist()
        return [r[: r.index(tgt.eos_id)] if tgt.eos_id in r else r for r in rows]


model = AttentionSeq2Seq()
opt = torch.optim.Adam(model.parameters(), lr=1e-3)
loss_fn = nn.CrossEntropyLoss(ignore_index=0)


def exact_match(examples):
    model.eval()  # no dropout while decoding
    ok = n = 0
    for b in batches(examples, False):
        for out, row, k in zip(
            model.greedy(torch.as_tensor(b.inputs), b.lengths), b.targets, b.target_lengths
        ):
            ok += out == row[1 : k - 1].tolist()
            n += 1
    return ok / n


print(
    f"{data}: {len(train)}/{len(dev)}/{len(test)}, cell {cell}, E {E}, H {H}, bidirectional {bidirectional}, "
    f"dropout {args.dropout:g}, {sum(p.numel() for p in model.parameters()):,} parameters",
    flush=True,
)
train_batches, best = batches(train, True), (-1.0, 0, 0.0)
for epoch in range(epochs):
    train_batches.set_epoch(epoch)
    model.train()
    start, total = time.time(), 0.0
    for b in train_batches:
        x, y = torch.as_tensor(b.inputs), torch.as_tensor(b.targets)
        loss = loss_fn(model(x, b.lengths, y[:, :-1]).reshape(-1, len(tgt)), y[:, 1:].reshape(-1))
        opt.zero_grad()
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        total += loss.item()
    d = exact_match(dev)
    if d > best[0]:
        best = (d, epoch + 1, exact_match(test))
    print(
        f"epoch {epoch + 1} loss {total / len(train_batches):.4f} dev {d:.4f} {time.time() - start:.1f}s",
        flush=True,
    )
print(f"best dev {best[0]:.4f} at epoch {best[1]}, test exact match {best[2]:.4f}")
