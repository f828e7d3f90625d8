# The commands the README names. Each one sets up the environment first (a no-op in
# seconds when it is already in place).
PYTHON ?= python3
VENV   ?= .venv
# A leading "~" or "~/" expanded here: zsh passes `VENV=~/envs/x` to make as it is, and the
# quotes below would keep it literal (a folder named "~" inside the checkout). Only the
# first word is rewritten (make splits at spaces; "~bob/x" is left alone).
VENV_DIR := $(if $(filter ~ ~/%,$(firstword $(VENV))),$(HOME)$(patsubst ~%,%,$(firstword $(VENV)))$(if $(word 2,$(VENV)), $(wordlist 2,$(words $(VENV)),$(VENV))),$(VENV))
# Quoted: an environment's path may hold spaces (`make main VENV="/path/my env"`).
PY     := "$(VENV_DIR)/bin/python"

.PHONY: env main test bench bench-train

env:
	$(PYTHON) tools/setup_env.py --venv "$(VENV_DIR)"

# The main job: synthetic dataset -> RetinaNet + DropBlock from scratch on CPU -> COCO AP.
main: env
	$(PY) tools/main_job.py

# The test suite (what .ci/run runs): one pytest-xdist worker per core, at most 4, each
# test file on one worker (its module fixtures, e.g. the Triton interpreter run, once).
test: env
	$(PY) -m pytest -q -n auto --maxprocesses 4 --dist loadfile tests

bench: env
	$(PY) benchmarks/bench_dropblock.py

bench-train: env
	$(PY) benchmarks/bench_train_step.py
