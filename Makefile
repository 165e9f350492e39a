# Every target runs inside the project's virtualenv, which `install` creates.
# The two commands of the README: `make demo` and `make test`.

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
SEQREC := $(BIN)/seqrec
DATA ?= ../shared/datasets/yoochoose-1-64/rec15_train_full.txt
STAMP := $(VENV)/.installed

.PHONY: install demo test stack-up stack-down stack-status replay bench-replay clean

install: $(STAMP)

$(STAMP): setup.py constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c constraints.txt -e ".[all,test]"
	touch $(STAMP)

demo: install
	$(SEQREC) demo --data $(DATA)

test: install
	$(BIN)/python -m pytest

stack-up: install
	$(SEQREC) stack up $(STACK_ARGS)

stack-down: install
	$(SEQREC) stack down

stack-status: install
	$(SEQREC) stack status

replay: install
	$(SEQREC) replay $(DATA) $(REPLAY_ARGS)

bench-replay: install
	$(BIN)/python benchmarks/replay.py $(DATA)

clean:
	rm -rf $(VENV) *.egg-info .pytest_cache
