"""The task registry: each task knows its data sets, options, tokens, targets, model and metric,
so that run directories and the command line never compare task names."""

import numpy as np
import pytest

from tinygrad_rnn import models
from tinygrad_rnn.data import DATASETS as DATA_SET_NAMES
from tinygrad_rnn.data import Vocab
from tinygrad_rnn.tasks import DATASETS, DEFAULTS, TASK_OPTIONS, TASKS, RunError, check_config

SIZES = dict(
    embed=4,
    hidden=6,
    layers=1,
    bidirectional=False,
    feed_context=False,
    attention=None,
    cell="rnn",
    dropout=0.0,
    pooling="mean",
    decode_max_len=5,
)


def test_every_data_set_belongs_to_exactly_one_task():
    owners = [d for t in TASKS.values() for d in t.datasets]
    assert sorted(owners) == sorted(DATA_SET_NAMES) == sorted(DATASETS) == sorted(DEFAULTS)


@pytest.mark.parametrize(
    "setting, task, data, takes",
    [
        ("pooling", "classify", None, True),
        ("pooling", "tag", None, False),
        ("pooling", "seq2seq", None, False),
        ("max_len", "classify", "reviews", True),
        ("max_len", "tag", None, False),
        ("direction", "seq2seq", "numerals", True),
        ("direction", "seq2seq", "pinyin", False),
        ("direction", "seq2seq", None, True),
        ("direction", "classify", None, False),
        ("attention", "seq2seq", None, True),
        ("attention", "classify", None, False),
        ("dropout", "tag", None, False),
        ("epochs", "tag", None, True),
        ("bidirectional", "classify", None, True),
    ],
)
def test_which_task_takes_which_option(setting, task, data, takes):
    assert TASKS[task].takes(setting, data) is takes


def test_a_task_only_option_is_taken_by_some_task_and_refused_by_another():
    for option in TASK_OPTIONS:
        takers = {name for name, t in TASKS.items() if t.takes(option)}
        assert takers and takers != set(TASKS), (option, takers)
        assert TASKS["classify"].applies_to(option), option


def test_tokens_per_task():
    assert TASKS["classify"].tokenize("很 好！") == ["很", "好", "！"]
    assert TASKS["tag"].tokenize("我们  爱 北京") == ["我们", "爱", "北京"]
    assert TASKS["seq2seq"].tokenize("一千 零一") == list("一千零一")


def test_targets_and_models_per_task():
    train = [(list("好吃"), 1), (list("难吃"), 0)]
    assert TASKS["classify"].target_vocab(train) is None and not TASKS["classify"].has_target_vocab
    assert TASKS["classify"].encode_targets(train, None) == [1, 0]
    pairs = [(list("一"), list("1"))]
    vocab = TASKS["seq2seq"].target_vocab(pairs)
    encoded = TASKS["seq2seq"].encode_targets(pairs, vocab)[0]
    assert encoded[0] == vocab.bos_id and encoded[-1] == vocab.eos_id and len(encoded) == 3
    assert TASKS["tag"].encode_targets([(["我"], ["r"])], Vocab(["r"]))[0] == Vocab(["r"]).encode(["r"])
    src, tgt = Vocab(list("abc")), Vocab(list("xy"))
    built = {name: TASKS[name].build_model({**SIZES, "task": name}, src, tgt, "cpu") for name in TASKS}
    assert isinstance(built["classify"], models.SequenceClassifier)
    assert isinstance(built["tag"], models.SequenceTagger)
    assert isinstance(built["seq2seq"], models.Seq2Seq)
    assert TASKS["seq2seq"].derived_settings([(["a"], list("xyz"))]) == {"decode_max_len": 8}
    assert TASKS["classify"].derived_settings(train) == {}


def test_predictions_are_printed_per_task():
    probs = np.array([[0.2, 0.8]])
    assert TASKS["classify"].format_predictions({}, ["好"], [["好"]], (np.array([1]), probs), None) == [
        "positive  0.800  好"
    ]
    tags = Vocab(["n", "v"])
    assert TASKS["tag"].format_predictions(
        {}, ["我 爱"], [["我", "爱"]], [[tags.token_to_id("n"), tags.token_to_id("v")]], tags
    ) == ["我/n  爱/v"]
    pinyin = Vocab(["zhōng", "guó"])
    out = [[pinyin.token_to_id("zhōng"), pinyin.token_to_id("guó")]]
    assert TASKS["seq2seq"].format_predictions({"data": "pinyin"}, ["中国"], [], out, pinyin) == [
        "中国  →  zhōng guó"
    ]


def test_a_config_of_the_wrong_data_set_or_missing_a_task_setting_is_refused():
    config = {"format": "tinygrad_rnn.run", "version": 1, "task": "tag", "data": "reviews"}
    with pytest.raises(RunError, match="does not fit task 'tag'"):
        check_config(config, "c")
    with pytest.raises(RunError, match="missing: .*decode_max_len"):
        check_config({**config, "task": "seq2seq", "data": "numerals"}, "c")
