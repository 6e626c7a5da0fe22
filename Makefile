# The tutorial's commands. Everything runs inside .venv, which the first command creates.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
BROWSER_STAMP := $(VENV)/.installed-browser
NB := notebooks/*.ipynb
# The committed outputs and shipped checkpoints were made with one thread (the same numbers on any
# machine, and no slowdown when other jobs share the cores); `make notebooks THREADS=2` to change.
THREADS ?= 1

.PHONY: lab test unit nbtest rehearse notebooks results checkpoints bench browser-check clean-venv

# TORCH=cpu: PyTorch's CPU-only build, from PyTorch's own index, installed before the package (whose
# requirement it then satisfies); without it pip installs the default build, with CUDA on Linux (several GB).
TORCH ?=
TORCH_CPU_INDEX := https://download.pytorch.org/whl/cpu

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(if $(filter cpu,$(TORCH)),$(PY) -m pip install --quiet torch torchvision --index-url $(TORCH_CPU_INDEX))
	$(PY) -m pip install --quiet -e ".[notebooks,test,timm]"
	touch $(STAMP)

# playwright (about 170 MB) only for make browser-check, not for a learner's make lab
$(BROWSER_STAMP): $(STAMP)
	$(PY) -m pip install --quiet -e ".[notebooks,test,timm,browser]"
	touch $(BROWSER_STAMP)

## make lab: install, start JupyterLab on notebooks/. No kernel is registered: JupyterLab run from .venv
## offers its own python3 kernel, which runs .venv/bin/python, and the notebooks ask for python3.
## (Earlier versions registered a user kernel `vit-tutorial`: a second Python kernel; it is removed.)
lab: $(STAMP)
	@if $(VENV)/bin/jupyter kernelspec list | grep -q '^ *vit-tutorial '; then \
		echo "removing the kernel vit-tutorial that an earlier make lab registered (the notebooks use python3)"; \
		$(VENV)/bin/jupyter kernelspec remove -y vit-tutorial; fi
	$(VENV)/bin/jupyter lab --notebook-dir=notebooks $(if $(DISPLAY),,--no-browser) \
		$(if $(filter 0,$(shell id -u)),--allow-root) $(LAB_ARGS)

## make test: unit tests, then every notebook under nbval in the smoke profile
test: $(STAMP)
	VIT_TUTORIAL_PROFILE=smoke $(PY) -m pytest -q tests
	VIT_TUTORIAL_PROFILE=smoke $(PY) -m pytest -q --nbval-lax --nbval-current-env \
		--nbval-sanitize-with notebooks/sanitize.cfg $(NB)

unit: $(STAMP)
	VIT_TUTORIAL_PROFILE=smoke $(PY) -m pytest -q tests

## make rehearse: a workshop dry run: every notebook under nbval in the gpu profile, with synthetic
## CIFAR-shaped data standing in for CIFAR-10 (no download); meant for the workshop's GPU
rehearse: $(STAMP)
	VIT_TUTORIAL_PROFILE=gpu VIT_TUTORIAL_SYNTHETIC=1 $(PY) -m pytest -q --nbval-lax --nbval-current-env \
		--nbval-sanitize-with notebooks/sanitize.cfg $(NB)

## make notebooks: re-execute every notebook in place in the cpu profile (the committed outputs)
notebooks: $(STAMP)
	for nb in $(NB); do \
		OMP_NUM_THREADS=$(THREADS) VIT_TUTORIAL_PROFILE=cpu VIT_TUTORIAL_HEADLESS=1 $(VENV)/bin/jupyter nbconvert --to notebook --execute --inplace \
			--ExecutePreprocessor.timeout=1800 --ExecutePreprocessor.kernel_name=python3 $$nb || exit 1; \
	done

## make results: train again every cached experiment run of the cpu profile (data/results/cpu): executes every
## notebook into a scratch folder with VIT_TUTORIAL_RERUN set to now, so each run is trained once (several hours on
## one core); then `make notebooks` re-executes the notebooks in place on the new results
results: $(STAMP)
	scratch=$$(mktemp -d); since=$$(date +%s); for nb in $(NB); do \
		OMP_NUM_THREADS=$(THREADS) VIT_TUTORIAL_PROFILE=cpu VIT_TUTORIAL_HEADLESS=1 VIT_TUTORIAL_RERUN=$$since \
			$(VENV)/bin/jupyter nbconvert --to notebook --execute --output-dir $$scratch \
			--ExecutePreprocessor.timeout=-1 --ExecutePreprocessor.kernel_name=python3 $$nb || exit 1; \
	done; rm -rf $$scratch

## make browser-check: JupyterLab started by `make lab` (smoke profile), driven by headless Chromium
## (Debian's chromium package; CHROMIUM=/path to use another) through playwright: see scripts/browser_check.py
browser-check: $(BROWSER_STAMP)
	$(PY) scripts/browser_check.py

## make checkpoints: retrain the shipped checkpoints in data/checkpoints (cpu profile)
checkpoints: $(STAMP)
	OMP_NUM_THREADS=$(THREADS) $(PY) scripts/make_checkpoints.py

## make bench: run the benchmarks in bench/ and write bench/results/ (THREADS torch threads; suite.py's
## children run `make test`'s commands with their own defaults)
bench: $(STAMP)
	for s in throughput attention_cost fit_speed learning suite; do \
		echo "== bench/$$s.py --threads $(THREADS)"; \
		$(PY) bench/$$s.py --threads $(THREADS) || exit 1; \
	done

clean-venv:
	rm -rf $(VENV)
