"""What attention costs per training step: phrase → pinyin, the plain and the attention Seq2Seq.

    python examples/attention_speed.py [--batches N] [--rounds R]

Both models at the reference configuration of docs/results.md (E 64, H 256, batch 64, Adam 1e-3,
clip 1; attention with A = H, with a uni- and a bidirectional encoder) train on the same first
batches of the same shuffled epoch, in alternating blocks of N batches, R rounds, in one process
and one BLAS thread, so both see the same load. Prints seconds per batch (median over rounds) and
the epoch that extrapolates to (the training split's batches × seconds per batch; dev scoring not
included).
"""

import argparse
import itertools
import os
import statistics
import time

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")

from tinygrad_rnn.backend import manual_seed  # noqa: E402
from tinygrad_rnn.data import BatchIterator, Vocab, load_pinyin, train_dev_test_split  # noqa: E402
from tinygrad_rnn.models import Seq2Seq, decoder_io  # noqa: E402
from tinygrad_rnn.optim import Adam, clip_grad_norm_  # noqa: E402
from tinygrad_rnn.threads import tune_malloc  # noqa: E402

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--batches", type=int, default=20)
parser.add_argument("--rounds", type=int, default=3)
args = parser.parse_args()
tune_malloc()  # the process's allocator keeps freed memory for the next step

train, _, _ = train_dev_test_split(load_pinyin(), seed=0, key=lambda ex: tuple(ex[0]))
src, tgt = Vocab.build(x for x, _ in train), Vocab.build(y for _, y in train)
batches = BatchIterator(
    [src.encode(x) for x, _ in train],
    [tgt.encode(y) for _, y in train],
    batch_size=64,
    shuffle=True,
    seed=0,
    bucket=True,
)
per_epoch = len(batches)
steps = list(itertools.islice(iter(batches), args.batches))


def model(attention, bidirectional=False):
    manual_seed(0)
    m = Seq2Seq(len(src), len(tgt), 64, 256, attention=attention, bidirectional=bidirectional)
    return m, Adam(m.parameters(), lr=1e-3)


def train_block(m, opt):
    start = time.perf_counter()
    for b in steps:
        tgt_in, tgt_out, out_lengths = decoder_io(b.targets, b.target_lengths, tgt.bos_id, tgt.eos_id)
        loss = m.loss(b.inputs, b.lengths, tgt_in, tgt_out, out_lengths)
        opt.zero_grad()
        loss.backward()
        clip_grad_norm_(m.parameters(), 1.0)
        opt.step()
    return (time.perf_counter() - start) / len(steps)


models = {
    "plain": model(None),
    "attention, unidirectional": model("additive"),
    "attention, bidirectional": model("additive", bidirectional=True),
}
times = {name: [] for name in models}
for _ in range(args.rounds):
    for name, (m, opt) in models.items():
        times[name].append(train_block(m, opt))
plain = statistics.median(times["plain"])
for name in models:
    t = statistics.median(times[name])
    print(
        f"{name:26s}  {t * 1000:7.1f} ms/batch  "
        f"(rounds: {', '.join(f'{x * 1000:.0f}' for x in times[name])})  "
        f"≈ {t * per_epoch / 60:.1f} min per epoch of {per_epoch} batches  ×{t / plain:.2f}"
    )
