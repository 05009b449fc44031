# Every target creates .venv on first use and installs what it needs into it.
VENV   := .venv
PY     := $(VENV)/bin/python
EXTRAS := test,data,plot,progress,nbexec
STAMP  := $(VENV)/.installed-$(EXTRAS)

.PHONY: run demo lint test test-gpu bench notebook notebooks review-figure clean

$(STAMP): pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[$(EXTRAS)]'
	touch $@

# The main job: train the review classifier on CPU (the mean-pooling row of docs/results.md:
# under a minute on 2 idle cores, a few on busy ones), print its test accuracy, classify a short
# review and the chapter's long restaurant review (docs/chapter.md; REVIEW_LONG is
# tinygrad_rnn.models.prefixes.CHAPTER_REVIEW), then point to the figure of four classifiers trained
# on all the data reading that review, and say what to type next.
RUN_DIR      := runs/make-run
REVIEW_SHORT := 这本书质量很好，送货也快，非常满意！
REVIEW_LONG  := 我觉得这家餐馆的菜品很不错，烤鸭非常正宗，包子也不错，酱牛肉很有嚼劲，但是服务员态度太恶劣了，我们在门口等了50分钟都没有能成功进去，好不容易进去了，桌子也半天没人打扫，整个环境非常吵闹，我的孩子都被吓哭了，我下次不会带朋友来。
REVIEW_YOURS := 服务太慢了，菜也凉了，不会再来。

# The CLI chooses one BLAS thread itself (docs/performance.md, "BLAS threads: why one").
run: $(STAMP)
	$(PY) -m tinygrad_rnn train classify --data reviews --pooling mean --epochs 10 --device cpu --out $(RUN_DIR) --overwrite
	$(PY) -m tinygrad_rnn predict $(RUN_DIR) "$(REVIEW_SHORT)" "$(REVIEW_LONG)"
	@echo
	@echo "The long review praises the food, then complains. How four classifiers trained on all the reviews"
	@echo "(vanilla, LSTM, GRU) read it, one character at a time, and why the gated ones call it positive:"
	@echo "  docs/img/review-prefixes.png, explained in docs/results.md (\"The chapter's review\"); make review-figure redraws it"
	@echo
	@echo "What next? In this directory, put tinygrad-rnn on your PATH:"
	@echo "  source .venv/bin/activate"
	@echo "then classify your own review (or watch a GRU trained on all the reviews read it, character by"
	@echo "character), score the model again, and watch a gradient vanish through time:"
	@echo '  tinygrad-rnn predict $(RUN_DIR) "$(REVIEW_YOURS)"'
	@echo '  tinygrad-rnn predict models/reviews/gru-last "$(REVIEW_YOURS)" --prefixes'
	@echo "  tinygrad-rnn evaluate $(RUN_DIR)"
	@echo "  tinygrad-rnn bptt flow --length 100"

# The first demo: one RNN cell unrolled, backpropagated and gradient-checked.
demo: $(STAMP)
	$(PY) examples/rnn_cell_demo.py

# Lint, import order, formatting and types, as CI checks them (the lint extra: ruff, mypy).
LINT_STAMP := $(VENV)/.installed-lint-$(EXTRAS)
$(LINT_STAMP): $(STAMP)
	$(PY) -m pip install --quiet -e '.[$(EXTRAS),lint]'
	touch $@

lint: $(LINT_STAMP)
	$(VENV)/bin/ruff check tinygrad_rnn tests benchmarks examples docs notebooks
	$(VENV)/bin/ruff format --check tinygrad_rnn tests benchmarks examples docs notebooks
	$(VENV)/bin/mypy

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
	$(PY) benchmarks/bench.py --threads 1 $(BENCH_ARGS)

# The same step in HIPS autograd, mygrad, DeZero, JAX (eager and jit), tinygrad and PyTorch, each
# checked equal to ours, then timed beside it, one thread (docs/performance.md, "Against other
# autodiff libraries"). Installs the peers extra into .venv; PEERS_ARGS adds options, e.g.
# make bench-peers PEERS_ARGS="--configs small --json peers.json".
.PHONY: bench-peers
PEERS_STAMP := $(VENV)/.installed-peers-$(EXTRAS)
$(PEERS_STAMP): $(STAMP)
	$(PY) -m pip install --quiet -e '.[$(EXTRAS),peers]'
	touch $@

bench-peers: $(PEERS_STAMP)
	$(PY) benchmarks/peers.py $(PEERS_ARGS)

# Open the notebooks (notebooks/*.ipynb, generated from the NN_*.py sources) in JupyterLab, from
# .venv with the notebook extra. The .py and .ipynb are paired by jupytext: saving one updates both.
# The .ipynb are committed without outputs: python notebooks/build.py --strip before committing.
# JUPYTER_ARGS adds options, e.g. make notebook JUPYTER_ARGS="--no-browser --port 8899".
NB_STAMP := $(VENV)/.installed-notebook-$(EXTRAS)
$(NB_STAMP): $(STAMP)
	$(PY) -m pip install --quiet -e '.[$(EXTRAS),notebook]'
	touch $@

notebook: $(NB_STAMP)
	$(VENV)/bin/jupyter lab --notebook-dir=notebooks $(JUPYTER_ARGS)

# Run every notebook source top to bottom (its asserts check what its text says) and write the
# executed copies to runs/notebooks/ (one BLAS thread, as for make run). NOTEBOOKS="02 03" runs only those.
notebooks: $(STAMP)
	OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1 $(PY) notebooks/build.py $(NOTEBOOKS)

# docs/img/review-prefixes.png: the chapter's review read by the classifiers in models/reviews/
# (docs/results.md, "The chapter's review"); also prints the numbers that section quotes.
review-figure: $(STAMP)
	$(PY) docs/review_prefixes.py

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .hypothesis
