"""Asynchronous sequence → sequence (docs/chapter.md, section 4): Chinese numerals → digits.

``一万零三`` → ``10003``: input and output differ in length, and the first digit depends on the
whole numeral (is there a 万?), so an encoder RNN reads everything first; its final state starts a
decoder RNN that writes the digits one at a time, reading back its own previous output.

``--feed-context`` also hands the encoder's summary to the decoder at *every* step (Cho et al.
2014). Without it, all it knows about the numeral must survive in the decoder's state from step
to step — the chapter's section 3 in one switch. The data is generated: no extra needed.

    python examples/translate_numerals.py [--device cpu|cuda] [--feed-context] [--epochs N]
        [--quick] [--threads N]

``--quick`` only checks that everything runs (a small model, two epochs on 400 numbers: seconds); it
does not learn, so its digit strings are guesses.
"""

import argparse

import tinygrad_rnn as tg
from tinygrad_rnn.data import BatchIterator, Vocab, load_numerals, pad_sequences, to_chinese
from tinygrad_rnn.models import Seq2Seq
from tinygrad_rnn.optim import Adam
from tinygrad_rnn.threads import add_threads_argument, set_blas_threads, tune_malloc
from tinygrad_rnn.train import Seq2SeqTask, evaluate, fit


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu", help="cpu | cuda (default cpu)")
    parser.add_argument(
        "--feed-context",
        action="store_true",
        help="hand the encoder's summary to the decoder at every step (default: only at the start)",
    )
    parser.add_argument(
        "--epochs", type=int, default=10, help="passes over the 50,000 training numbers (default 10)"
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="a small model, two epochs on 400 numbers (seconds): checks that it runs, does not learn",
    )
    add_threads_argument(parser)
    args = parser.parse_args()
    set_blas_threads(args.threads)
    tune_malloc()  # the process's allocator keeps freed memory for the next step
    hidden, epochs, sizes = (
        (32, 2, (400, 50, 50)) if args.quick else (256, args.epochs, (50_000, 5_000, 5_000))
    )

    # 1. Data: disjoint random numbers 0..99,999,999 as (numeral characters, digit characters).
    tg.manual_seed(0)
    train, dev, test = load_numerals("to_digits", *sizes, seed=0)
    src = Vocab.build(x for x, _ in train)
    tgt = Vocab.build(y for _, y in train)

    def batches(examples, shuffle):
        # The decoder's targets are <bos> y_1 … y_n <eos>: it learns to say when it is done.
        return BatchIterator(
            [src.encode(x) for x, _ in examples],
            [tgt.encode(y, add_bos=True, add_eos=True) for _, y in examples],
            batch_size=64,
            shuffle=shuffle,
            bucket=True,
        )

    # 2. Model and training: teacher forcing for the loss, greedy decoding for the dev score.
    model = Seq2Seq(len(src), len(tgt), 32, hidden, feed_context=args.feed_context).to(args.device)
    task = Seq2SeqTask(max_len=12, bos_id=tgt.bos_id, eos_id=tgt.eos_id)
    fit(
        model,
        task,
        Adam(model.parameters(), lr=1e-3),
        batches(train, True),
        batches(dev, False),
        epochs=epochs,
        clip=1.0,
    )
    scores = evaluate(model, task, batches(test, False))
    print(f"test exact match: {scores['exact_match']:.3f}, digit accuracy: {scores['token_accuracy']:.3f}")
    if args.quick:
        print(
            f"(--quick: seconds of training on {len(train)} numbers are not expected to learn anything: "
            f"the scores above and the digits below are guesses. Drop --quick for a real run: "
            f"{args.epochs} epochs on 50,000 numbers, minutes.)"
        )

    # 3. Use it: decode a few numerals the model has (very likely) never seen.
    numbers = [7, 15, 105, 1010, 20_003, 99_999_999]
    ids, lengths = pad_sequences([src.encode(to_chinese(n)) for n in numbers])
    for n, out in zip(
        numbers, model.generate(ids, lengths, max_len=12, bos_id=tgt.bos_id, eos_id=tgt.eos_id)
    ):
        answer = "".join(tgt.decode(out))
        print(f"{to_chinese(n):>10} → {answer:<9} {'✓' if answer == str(n) else '✗ (' + str(n) + ')'}")


if __name__ == "__main__":
    main()
