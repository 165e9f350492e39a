# Every target runs inside the project's virtualenv, which `install` creates.
# The two commands of the README: `make demo` and `make test`.

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
SEQREC := $(BIN)/seqrec
# A dataset folder with NAME_train_full.txt and NAME_test.txt, or one dataset file.
DATA ?= ../shared/datasets/yoochoose-1-64
# The file that replay targets read: the training file of a DATA folder, else DATA itself.
DATA_FILE = $(or $(firstword $(wildcard $(DATA)/*_train_full.txt)),$(DATA))
STAMP := $(VENV)/.installed

.PHONY: install demo test stack-up stack-down stack-status replay bench-replay proto bench-serving clean

install: $(STAMP)

$(STAMP): setup.py constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c constraints.txt -e ".[all,test]"
	touch $(STAMP)

demo: install
	$(SEQREC) demo --data $(DATA) $(DEMO_ARGS)

test: install
	$(BIN)/python -m pytest

stack-up: install
	$(SEQREC) stack up $(STACK_ARGS)

stack-down: install
	$(SEQREC) stack down

stack-status: install
	$(SEQREC) stack status

replay: install
	$(SEQREC) replay $(DATA_FILE) $(REPLAY_ARGS)

bench-replay: install
	$(BIN)/python benchmarks/replay.py $(DATA_FILE)

# Regenerate the committed gRPC code after editing serving/protos; tests/test_serving_proto.py checks it.
proto: install
	$(BIN)/python -m serving.protos.generate

bench-serving: install
	$(BIN)/python benchmarks/serving.py

clean:
	rm -rf $(VENV) *.egg-info .pytest_cache
