"""Where a trained phrase → pinyin model wins and loses against the per-character lookup.

    python examples/attention_pinyin_errors.py RUN_DIR [--split test|dev] [--beam K]

Decodes the split with the run's best checkpoint, reads every phrase also with the lookup
(each character's most frequent training reading; unseen characters get the most frequent
syllable, as in tinygrad_rnn.baselines), and counts who is right where. The phrases the model
gets wrong are sorted into: a character never seen in training; a tone change of 一 or 不
(tone sandhi: yī/yí/yì, bù/bú, decided by the next syllable's tone); a polyphone (a character
with more than one reading in training) read wrongly; anything else.
"""

import argparse
from collections import Counter, defaultdict

import numpy as np

from tinygrad_rnn import runs
from tinygrad_rnn.data import pad_sequences

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("run")
parser.add_argument("--split", choices=("dev", "test"), default="test")
parser.add_argument("--beam", type=int, default=1)
parser.add_argument("--show", type=int, default=8, help="examples shown per kind")
args = parser.parse_args()

config, model, src_vocab, tgt_vocab = runs.load_run(args.run, "cpu")
train, dev, test = runs.load_splits(config)
examples = test if args.split == "test" else dev

readings: dict = defaultdict(Counter)
overall: Counter = Counter()
for chars, sylls in train:
    for c, s in zip(chars, sylls):
        readings[c][s] += 1
        overall[s] += 1
fallback = overall.most_common(1)[0][0]

outputs = []
for start in range(0, len(examples), 64):
    chunk = examples[start : start + 64]
    ids, lengths = pad_sequences([src_vocab.encode(x) for x, _ in chunk])
    decoded = model.generate(
        ids, lengths, config["decode_max_len"], tgt_vocab.bos_id, tgt_vocab.eos_id, beam_size=args.beam
    )
    outputs += [[tgt_vocab.id_to_token(i) for i in out] for out in decoded]

table = Counter()
kinds: dict = defaultdict(list)
for (chars, gold), out in zip(examples, outputs):
    gold = list(gold)
    lookup = [readings[c].most_common(1)[0][0] if c in readings else fallback for c in chars]
    table[(out == gold, lookup == gold)] += 1
    if out == gold:
        continue
    if any(c not in readings for c in chars):
        kind = "unseen character"
    elif len(out) == len(gold) and all(o == g or c in "一不" for c, o, g in zip(chars, out, gold)):
        kind = "tone sandhi of 一/不"
    elif len(out) == len(gold) and all(o == g or len(readings[c]) > 1 for c, o, g in zip(chars, out, gold)):
        kind = "polyphone read wrongly"
    else:
        kind = "other"
    kinds[kind].append(("".join(chars), " ".join(gold), " ".join(out)))

n = len(examples)
print(
    f"{args.split}: {n} phrases; model exact {sum(v for (m, _), v in table.items() if m) / n:.4f}, "
    f"lookup exact {sum(v for (_, l), v in table.items() if l) / n:.4f}"
)
for (m, l), label in (
    ((True, True), "both right"),
    ((True, False), "model right, lookup wrong"),
    ((False, True), "lookup right, model wrong"),
    ((False, False), "both wrong"),
):
    print(f"  {label:26s} {table[(m, l)]:5d}  ({table[(m, l)] / n:.1%})")
print("model errors by kind:")
for kind, items in sorted(kinds.items(), key=lambda kv: -len(kv[1])):
    print(
        f"  {kind:24s} {len(items):4d}  e.g. "
        + "; ".join(f"{c} {o} (gold {g})" for c, g, o in items[: args.show])
    )
print("mean phrase length", np.mean([len(x) for x, _ in examples]).round(2))
