# Every target creates .venv on first use and installs what it needs into it.
VENV   := .venv
PY     := $(VENV)/bin/python
EXTRAS := test,data,plot,progress
STAMP  := $(VENV)/.installed-$(EXTRAS)

.PHONY: run demo test test-gpu bench clean

$(STAMP): pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[$(EXTRAS)]'
	touch $@

# The main job: train the review classifier on CPU (the mean-pooling row of docs/results.md:
# under a minute on 2 idle cores, a few on busy ones), print its test accuracy, then classify
# a short review and the tutorial's long restaurant review (section 3).
RUN_DIR      := runs/make-run
REVIEW_SHORT := 这本书质量很好，送货也快，非常满意！
REVIEW_LONG  := 我觉得这家餐馆的菜品很不错，烤鸭非常正宗，包子也不错，酱牛肉很有嚼劲，但是服务员态度太恶劣了，我们在门口等了50分钟都没有能成功进去，好不容易进去了，桌子也半天没人打扫，整个环境非常吵闹，我的孩子都被吓哭了，我下次不会带朋友来。

# One BLAS thread: these small matrix products gain nothing from two, and two threads collapse
# when anything else runs on a 2-core machine.
run: $(STAMP)
	OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1 $(PY) -m tinygrad_rnn train classify --data reviews --pooling mean --epochs 10 --device cpu --out $(RUN_DIR)
	$(PY) -m tinygrad_rnn predict $(RUN_DIR) "$(REVIEW_SHORT)" "$(REVIEW_LONG)"

# The first demo: one RNN cell unrolled, backpropagated and gradient-checked.
demo: $(STAMP)
	$(PY) examples/rnn_cell_demo.py

test: $(STAMP)
	HYPOTHESIS_PROFILE=ci $(PY) -m pytest -q

# The suite on a real GPU: every device test runs on 'cuda', plus CPU-vs-CUDA parity.
# Installs the gpu extra unless some CuPy is already importable; without a GPU the cuda tests skip.
test-gpu: $(STAMP)
	$(PY) -c 'import cupy' 2>/dev/null || $(PY) -m pip install --quiet -e '.[$(EXTRAS),gpu]' \
		|| echo "make test-gpu: could not install CuPy; the cuda tests will skip and say why"
	TINYGRAD_RNN_TEST_DEVICE=cuda HYPOTHESIS_PROFILE=ci $(PY) -m pytest -q

# Speed against hand-written NumPy BPTT (and PyTorch, when torch is installed in .venv):
# one thread, since two BLAS threads collapse under any other load on a shared 2-core machine.
# BENCH_ARGS adds options, e.g. make bench BENCH_ARGS="--configs small --json bench.json".
bench: $(STAMP)
	$(PY) -m tinygrad_rnn.bench --threads 1 $(BENCH_ARGS)

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .hypothesis
