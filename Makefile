# Every target creates .venv on first use and installs what it needs into it.
VENV   := .venv
PY     := $(VENV)/bin/python
EXTRAS := test,data,plot
STAMP  := $(VENV)/.installed-$(EXTRAS)

.PHONY: run test test-gpu bench clean

$(STAMP): pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[$(EXTRAS)]'
	touch $@

run: $(STAMP)
	$(PY) -m tinygrad_rnn.demo

test: $(STAMP)
	HYPOTHESIS_PROFILE=ci $(PY) -m pytest -q

# The suite on a real GPU: every device test runs on 'cuda', plus CPU-vs-CUDA parity.
# Installs the gpu extra unless some CuPy is already importable; without a GPU the cuda tests skip.
test-gpu: $(STAMP)
	$(PY) -c 'import cupy' 2>/dev/null || $(PY) -m pip install --quiet -e '.[$(EXTRAS),gpu]' \
		|| echo "make test-gpu: could not install CuPy; the cuda tests will skip and say why"
	TINYGRAD_RNN_TEST_DEVICE=cuda HYPOTHESIS_PROFILE=ci $(PY) -m pytest -q

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .hypothesis
