"""Sequence → class (docs/chapter.md, section 4, figures 3 and 4): is a shopping review positive?

The RNN reads a review character by character, h_t = tanh(x_t W + h_{t-1} V + b); the review
is summarised by its last state h_n (``--pooling last``) or by the mean of all its states
(``--pooling mean``), and a Linear layer turns that summary into two class scores.

    python examples/classify_reviews.py [--device cpu|cuda] [--pooling mean|last] [--epochs N]
        [--quick] [--threads N]

``--quick`` only checks that everything runs (a tiny model, one epoch on 320 reviews: seconds); it
does not learn, so its accuracy and labels are guesses.

Needs the data extra: pip install 'tinygrad-rnn[data]'.
"""

import argparse

import tinygrad_rnn as tg
from tinygrad_rnn.data import BatchIterator, Vocab, load_reviews, pad_sequences, train_dev_test_split
from tinygrad_rnn.models import SequenceClassifier
from tinygrad_rnn.optim import Adam
from tinygrad_rnn.threads import add_threads_argument, set_blas_threads, tune_malloc
from tinygrad_rnn.train import ClassificationTask, evaluate, fit


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu", help="cpu | cuda (default cpu)")
    parser.add_argument(
        "--pooling",
        choices=("mean", "last"),
        default="mean",
        help="the review's summary: the mean of all states or the last state (default mean)",
    )
    parser.add_argument("--epochs", type=int, default=5, help="passes over the training reviews (default 5)")
    parser.add_argument(
        "--quick",
        action="store_true",
        help="a tiny model, one epoch on 400 reviews (seconds): checks that it runs, does not learn",
    )
    add_threads_argument(parser)
    args = parser.parse_args()
    set_blas_threads(args.threads)
    tune_malloc()  # the process's allocator keeps freed memory for the next step
    embed, hidden, epochs = (8, 16, 1) if args.quick else (64, 128, args.epochs)

    # 1. Data: (characters, label) pairs, split 80/10/10; the vocabulary comes from train only.
    tg.manual_seed(0)
    train, dev, test = train_dev_test_split(load_reviews(max_len=100), seed=0, key=lambda ex: tuple(ex[0]))
    if args.quick:
        train, dev, test = train[:320], dev[:40], test[:40]
    vocab = Vocab.build(text for text, _ in train)

    def batches(examples, shuffle):
        return BatchIterator(
            [vocab.encode(text) for text, _ in examples],
            [label for _, label in examples],
            batch_size=64,
            shuffle=shuffle,
            bucket=True,
        )

    # 2. Model and training: Adam, gradient clipping at 1.0, the best epoch on dev is kept.
    model = SequenceClassifier(len(vocab), embed, hidden, num_classes=2, pooling=args.pooling).to(args.device)
    task = ClassificationTask()
    fit(
        model,
        task,
        Adam(model.parameters(), lr=1e-3),
        batches(train, True),
        batches(dev, False),
        epochs=epochs,
        clip=1.0,
    )
    print(f"test accuracy: {evaluate(model, task, batches(test, False))['accuracy']:.3f}")
    if args.quick:
        print(
            f"(--quick: seconds of training on {len(train)} reviews are not expected to learn anything: "
            f"the accuracy above and the labels below are guesses. Drop --quick for a real run: "
            f"{args.epochs} epochs on all reviews, minutes.)"
        )

    # 3. Use it: the chapter's long restaurant review praises the food first and complains after.
    reviews = [
        "这本书质量很好，送货也快，非常满意！",
        "我觉得这家餐馆的菜品很不错，烤鸭非常正宗，包子也不错，酱牛肉很有嚼劲，但是服务员态度太恶劣了，"
        "我们在门口等了50分钟都没有能成功进去，好不容易进去了，桌子也半天没人打扫，整个环境非常吵闹，"
        "我的孩子都被吓哭了，我下次不会带朋友来。",
    ]
    ids, lengths = pad_sequences([vocab.encode(text) for text in reviews])
    labels, probs = model.predict(ids, lengths)
    for text, label, p in zip(reviews, labels, probs):
        shown = text if len(text) <= 30 else text[:30] + "…"
        print(f"{'positive' if label == 1 else 'negative'} ({p[label]:.2f}): {shown}")


if __name__ == "__main__":
    main()
