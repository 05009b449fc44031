"""Synchronous sequence → sequence (docs/chapter.md, section 4): part-of-speech tagging.

One output per input: the RNN reads a sentence word by word and, at every step t, a Linear layer
turns the state h_t into scores for the 44 tags of the People's Daily corpus (January 1998).
``--bidirectional`` adds a second RNN reading right to left, so the tag of word t can depend on
the words after it too.

    python examples/tag_pos.py [--device cpu|cuda] [--bidirectional] [--epochs N] [--quick] [--threads N]

``--quick`` only checks that everything runs (a tiny model, one epoch on 240 sentences: seconds); it
does not learn, so its accuracy and tags are guesses.

Needs the data extra: pip install 'tinygrad-rnn[data]'.
"""

import argparse

import tinygrad_rnn as tg
from tinygrad_rnn.data import BatchIterator, Vocab, load_peoples_daily, pad_sequences, train_dev_test_split
from tinygrad_rnn.models import SequenceTagger
from tinygrad_rnn.optim import Adam
from tinygrad_rnn.threads import add_threads_argument, set_blas_threads, tune_malloc
from tinygrad_rnn.train import TaggingTask, evaluate, fit


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu", help="cpu | cuda (default cpu)")
    parser.add_argument(
        "--bidirectional",
        action="store_true",
        help="add a second RNN reading right to left (default: left to right only)",
    )
    parser.add_argument(
        "--epochs", type=int, default=3, help="passes over the training sentences (default 3)"
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="a tiny model, one epoch on 300 sentences (seconds): checks that it runs, does not learn",
    )
    add_threads_argument(parser)
    args = parser.parse_args()
    set_blas_threads(args.threads)
    tune_malloc()  # the process's allocator keeps freed memory for the next step
    embed, hidden, epochs = (8, 16, 1) if args.quick else (64, 128, args.epochs)

    # 1. Data: (words, tags) per sentence. Words seen once in training become <unk>.
    tg.manual_seed(0)
    train, dev, test = train_dev_test_split(load_peoples_daily(), seed=0, key=lambda ex: tuple(ex[0]))
    if args.quick:
        train, dev, test = train[:240], dev[:30], test[:30]
    words = Vocab.build((w for w, _ in train), min_freq=2)
    tags = Vocab.build(t for _, t in train)  # tag id 0 is <pad>: ignored by the loss

    def batches(examples, shuffle):
        # Bucketing by length: sentences run from 1 to 659 words, and padding is wasted work.
        return BatchIterator(
            [words.encode(w) for w, _ in examples],
            [tags.encode(t) for _, t in examples],
            batch_size=64,
            shuffle=shuffle,
            bucket=True,
        )

    # 2. Model and training.
    model = SequenceTagger(len(words), embed, hidden, len(tags), bidirectional=args.bidirectional).to(
        args.device
    )
    task = TaggingTask()
    fit(
        model,
        task,
        Adam(model.parameters(), lr=3e-3),
        batches(train, True),
        batches(dev, False),
        epochs=epochs,
        clip=1.0,
    )
    print(f"test token accuracy: {evaluate(model, task, batches(test, False))['accuracy']:.3f}")
    if args.quick:
        print(
            f"(--quick: seconds of training on {len(train)} sentences are not expected to learn anything: "
            f"the accuracy above and the tags below are guesses. Drop --quick for a real run: "
            f"{args.epochs} epochs on all sentences, minutes.)"
        )

    # 3. Use it on a new sentence (words separated by spaces, as in the corpus).
    sentence = "我们 在 北京 学习 中文 。".split()
    ids, lengths = pad_sequences([words.encode(sentence)])
    predicted = model.predict(ids, lengths)[0]
    print("  ".join(f"{w}/{tags.id_to_token(t)}" for w, t in zip(sentence, predicted)))


if __name__ == "__main__":
    main()
