# Two commands a user needs: `make train` and `make test`. Each creates .venv on first use
# and reuses it after; a change to the pins reinstalls.
PYTHON   ?= python3.11
VENV     ?= .venv
PY       := $(VENV)/bin/python
STAMP    := $(VENV)/.installed
ARGS     ?=
# Offscreen MuJoCo on any machine: Mesa's EGL renders on the CPU when there is no GPU.
export MUJOCO_GL ?= egl
export PYOPENGL_PLATFORM ?= egl

.PHONY: train test bench lock clean-venv system-deps

train: $(STAMP)
	$(VENV)/bin/robot-rl train --config configs/train_default.yaml $(ARGS)

test: $(STAMP)
	$(PY) -m pytest tests $(ARGS)

bench: $(STAMP)
	$(VENV)/bin/robot-rl bench learner --quick

system-deps:
	@scripts/system_deps.sh

$(STAMP): requirements.txt constraints.txt setup.py setup.cfg scripts/system_deps.sh
	@scripts/system_deps.sh
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -c constraints.txt -r requirements.txt
	$(PY) -m pip install -q --no-deps --no-build-isolation -e .
	@touch $@

# Regenerate the lock after changing requirements.txt.
lock: $(STAMP)
	@(echo "# Full resolved set (lock) for requirements.txt; regenerate with: make lock"; \
	  $(PY) -m pip freeze --exclude-editable | sed 's/+cpu$$//') > constraints.txt

clean-venv:
	rm -rf $(VENV)
