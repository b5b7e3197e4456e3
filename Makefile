# The project's verbs. `make help` lists them.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= $(shell scripts/find_python.sh)
VENV := .venv
BIN := $(VENV)/bin
REQ_HASH := $(shell cat requirements.txt requirements-dev.txt constraints.txt pyproject.toml | sha256sum | cut -c1-16)
STAMP := $(VENV)/.installed-$(REQ_HASH)
MODEL_FILE := .cache/models/SmolLM2-135M-Instruct.Q4_1.gguf
# The sentence encoder's two derived files (its GGUF for llama.cpp, its ONNX export for ONNX Runtime).
ENCODER := .cache/models/all-MiniLM-L6-v2/model.f32.gguf .cache/models/all-MiniLM-L6-v2/model.onnx
INDEX := .cache/index/index.json
KNOWLEDGE_FILES := $(wildcard knowledge/*.yml knowledge/*.json $(addprefix knowledge/documents/*.,md txt html htm pdf))
WARM_STAMP := .cache/converted/.warm-$(shell cat config.yml 2>/dev/null | sha256sum | cut -c1-12)
RASA_PORT ?= 5005
ACTIONS_PORT ?= 5055
# Interface `make shell` / `make run` bind the Rasa server to (loopback unless told otherwise).
RASA_HOST ?= 127.0.0.1
ENDPOINTS ?= endpoints.yml
LLM_VENV := .venv-llm
LLM_STAMP := $(LLM_VENV)/.installed-$(shell cat requirements-llm-server.txt constraints-llm-server.txt | sha256sum | cut -c1-12)
LLM_PORT ?= 8000
export SQLALCHEMY_SILENCE_UBER_WARNING := 1
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1

.PHONY: help install llama-wheel setup index corpora train-guards services llm-server-env llm-server train retrain validate actions stop shell run test test-unit test-service test-stories test-e2e eval bench soak eval-rails finetune trace review-fill review-export lint clean

help: ## List the verbs
	@grep -hE '^[a-z0-9-]+:.*## ' $(MAKEFILE_LIST) | awk -F ':.*## ' '{printf "  make %-13s %s\n", $$1, $$2}'

$(STAMP): requirements.txt requirements-dev.txt constraints.txt pyproject.toml
	@test -n "$(PYTHON)" || { echo "error: no Python 3.10 found" >&2; exit 1; }
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check pip==24.2
	@$(MAKE) --no-print-directory llama-wheel
	$(BIN)/pip install --disable-pip-version-check --find-links .cache/wheels -r requirements-dev.txt -c constraints.txt
	@# the plugin itself, the way a user installs it (editable here: components/ is its source)
	$(BIN)/pip install --disable-pip-version-check --no-deps --no-build-isolation -e .
	$(BIN)/pip check
	@rm -f $(VENV)/.installed-*
	@touch $@

install: $(STAMP) ## Create .venv with Python 3.10, the pinned dependencies and the plugin (rasa_safe_hybrid, editable)

# llama-cpp-python is a source distribution: built once (llama.cpp's library only,
# no multimodal part), kept in .cache/wheels for .venv and .venv-llm alike.
# The source distribution stays there too: `make finetune` takes llama.cpp's GGUF converter from it.
LLAMA_CPP_PYTHON := llama-cpp-python==0.3.16
LLAMA_SDIST := .cache/wheels/llama_cpp_python-0.3.16.tar.gz
LLAMA_SDIST_SHA256 := 34ed0f9bd9431af045bb63d9324ae620ad0536653740e9bb163a2e1fcb973be6
LLAMA_WHEEL := .cache/wheels/.built-$(LLAMA_CPP_PYTHON)

$(LLAMA_WHEEL):
	@mkdir -p .cache/wheels
	@test -f $(LLAMA_SDIST) || $(BIN)/pip download --disable-pip-version-check --no-deps --no-binary :all: \
		-d .cache/wheels $(LLAMA_CPP_PYTHON)
	@echo "$(LLAMA_SDIST_SHA256)  $(LLAMA_SDIST)" | sha256sum -c --quiet - || \
		{ echo "error: $(LLAMA_SDIST) does not have the recorded sha256; remove it and run again" >&2; exit 1; }
	@echo "building $(LLAMA_CPP_PYTHON) once (about 3 minutes on 2 cores) into .cache/wheels"
	CMAKE_ARGS="-DLLAVA_BUILD=OFF" CMAKE_BUILD_PARALLEL_LEVEL=$$(nproc) $(BIN)/pip wheel --disable-pip-version-check \
		--no-deps --find-links .cache/wheels -w .cache/wheels $(LLAMA_SDIST)
	@touch $@

llama-wheel: $(LLAMA_WHEEL)

$(MODEL_FILE):
	$(BIN)/python scripts/fetch_model.py smollm2

# fetch_model.py records the files' sha256: when it changes, the files are checked (and remade) again.
$(ENCODER) &: scripts/fetch_model.py | $(STAMP)
	$(BIN)/python scripts/fetch_model.py minilm
	@touch $(ENCODER)

$(WARM_STAMP): $(MODEL_FILE) $(ENCODER) config.yml
	$(BIN)/python -m rasa_safe_hybrid warm
	@mkdir -p .cache/converted && rm -f .cache/converted/.warm-*
	@touch $@

$(INDEX): $(ENCODER) $(KNOWLEDGE_FILES) | install
	$(BIN)/python -m rasa_safe_hybrid.retrieval --no-corpora

index: install $(ENCODER) ## Build the knowledge index (knowledge/, knowledge/documents/, the reference corpora)
	scripts/corpora.sh

# The reference corpora (knowledge/corpora.yml: WordNet, FOLDOC) for `make shell` and `make run`:
# installed from Debian and indexed once (about 8 minutes on 2 cores; 376 MB in .cache/index).
# The tests use a tiny copy (tests/data/corpora), so `make test` does not wait for them.
CORPORA_STAMP := .cache/index/.corpora-$(shell cat knowledge/corpora.yml 2>/dev/null | sha256sum | cut -c1-12)
$(CORPORA_STAMP): knowledge/corpora.yml | $(ENCODER)
	scripts/corpora.sh
	@rm -f .cache/index/.corpora-* && touch $@

corpora: $(CORPORA_STAMP) ## Install and index the reference corpora once (make shell / make run do it)

setup: install $(ENCODER) $(WARM_STAMP) $(INDEX) ## install + the response model, the sentence encoder (sha256-checked) and the knowledge index

train: setup ## Train the Rasa model if config.yml, domain.yml or data/ changed
	$(BIN)/python scripts/gen_data.py --check
	scripts/train_if_needed.sh

retrain: setup ## Train the Rasa model unconditionally
	scripts/train_if_needed.sh --force

validate: setup ## Check the training data: rasa data validate + the project's data checks
	$(BIN)/pytest -q tests/test_data_files.py

actions: setup ## Start the action server in the background, supervised (loopback, port ACTIONS_PORT, secret var/action_token)
	ACTIONS_PORT=$(ACTIONS_PORT) scripts/action_server.sh start

stop: ## Stop the background action server
	ACTIONS_PORT=$(ACTIONS_PORT) scripts/action_server.sh stop

shell: train corpora actions ## Talk to the assistant in the terminal (rasa shell)
	@ACTIONS_PORT=$(ACTIONS_PORT) $(BIN)/python scripts/serve.py --dry-run --endpoints $(ENDPOINTS) > /dev/null
	RASA_AUTH_TOKEN="$${RASA_AUTH_TOKEN:-$$(cat var/auth_token)}" \
	ACTION_SERVER_TOKEN="$${ACTION_SERVER_TOKEN:-$$(cat var/action_token)}" \
		$(BIN)/rasa shell -i $(RASA_HOST) --endpoints var/endpoints.yml --credentials var/credentials.yml \
		-m models/assistant.tar.gz

run: train corpora actions ## Serve the channels whose secrets are set + the HTTP API (token) + the web chat page
	ACTIONS_PORT=$(ACTIONS_PORT) $(BIN)/python scripts/serve.py --host $(RASA_HOST) --port $(RASA_PORT) --endpoints $(ENDPOINTS)

test-stories: train ## rasa test on tests/test_stories.yml, failing on any prediction error
	$(BIN)/rasa test core --stories tests/test_stories.yml -m models/assistant.tar.gz \
		--fail-on-prediction-errors --out results/stories --no-plot

test-unit: setup ## Fast tier: no service, no server process, no trained model (under 2 min)
	$(BIN)/pytest -m "not service and not e2e"

test-service: setup services $(LLM_STAMP) ## Tests against PostgreSQL, Redis, RabbitMQ and the llama.cpp server
	$(BIN)/pytest -m service

services: ## Start PostgreSQL, Redis and RabbitMQ on loopback if needed; install Chromium once
	scripts/services.sh

test-e2e: train services $(LLM_STAMP) ## End-to-end tier: real rasa and action server processes, whole pipelines
	$(BIN)/pytest -m e2e

test: train test-stories services $(LLM_STAMP) ## Everything: story tests, then the unit, service and end-to-end tiers
	$(BIN)/pytest

eval: train ## Evaluation report (minutes): results/eval/report.md, report.json, plots
	$(BIN)/python -m benchmarks.evaluate --out results/eval $(EVAL_ARGS)


$(LLM_STAMP): requirements-llm-server.txt constraints-llm-server.txt $(STAMP)
	@test -n "$(PYTHON)" || { echo "error: no Python 3.10 found" >&2; exit 1; }
	@test -x $(LLM_VENV)/bin/python || $(PYTHON) -m venv $(LLM_VENV)
	$(LLM_VENV)/bin/python -m pip install --quiet --disable-pip-version-check pip==24.2
	@$(MAKE) --no-print-directory llama-wheel
	$(LLM_VENV)/bin/pip install --disable-pip-version-check --find-links .cache/wheels -r requirements-llm-server.txt -c constraints-llm-server.txt
	$(LLM_VENV)/bin/pip check
	@rm -f $(LLM_VENV)/.installed-*
	@touch $@

llm-server-env: $(LLM_STAMP) ## The OpenAI-compatible LLM server's own venv (.venv-llm; builds llama.cpp once)

llm-server: $(LLM_STAMP) $(MODEL_FILE) ## Serve the default GGUF over an OpenAI-compatible API on 127.0.0.1:LLM_PORT (supervised)
	$(BIN)/python scripts/supervise.py --name llm-server --health http://127.0.0.1:$(LLM_PORT)/v1/models -- \
		$(LLM_VENV)/bin/python -m llama_cpp.server --model $(MODEL_FILE) --model_alias smollm2 \
		--host 127.0.0.1 --port $(LLM_PORT) --n_ctx 2048 --n_threads 2

bench: train llm-server-env ## Latency, throughput and cost side by side: results/bench.json + a table
	$(BIN)/python -m benchmarks.bench --json results/bench.json $(BENCH_ARGS)
	$(BIN)/python -m benchmarks.review_bench --json results/review_bench.json

soak: train services ## Soak: 50 concurrent conversations x 20 turns over REST, SQLite and PostgreSQL+Redis; results/soak/
	$(BIN)/python -m benchmarks.soak --out results/soak $(SOAK_ARGS)

eval-rails: train ## Measure the rails on held-out sources, dev sets, paraphrases; latency, memory: results/rails/
	$(BIN)/python -m benchmarks.rails_eval --out results/rails

train-guards: setup ## Retrain the learned rails' heads from ../shared/datasets/safety_train (+ baselines)
	$(BIN)/python -m finetune.guards --compare

finetune: setup ## Fine-tune the response model on the project's data (+ FINETUNE_ARGS), promote if rails hold
	$(BIN)/python -m finetune $(FINETUNE_ARGS)

trace: ## Explain a conversation turn by turn: make trace ID=<sender id>
	@test -n "$(ID)" || { echo "usage: make trace ID=<sender id>" >&2; exit 2; }
	@$(BIN)/python scripts/trace.py "$(ID)" 2>/dev/null

review-fill: ## Replay conversations over REST so the review page has something to review (FILE=, default tests/test_stories.yml; needs make run)
	$(BIN)/python scripts/replay.py $(FILE) $(REPLAY_ARGS)

review-export: ## Reviewers' ratings -> data/nlu/reviewed.yml, tests/reviewed_stories.yml, finetune/data/reviewed.jsonl, guard rows
	$(BIN)/python -m rasa_safe_hybrid.review export

lint: install ## ruff on the repository, mypy on the plugin package (rasa_safe_hybrid, from components/)
	$(BIN)/ruff check .
	@mkdir -p .cache/lint && ln -sfn ../../components .cache/lint/rasa_safe_hybrid
	MYPYPATH=.cache/lint $(BIN)/mypy -p rasa_safe_hybrid --cache-dir .cache/lint/mypy

clean: stop ## Remove trained models, results and runtime files (keeps .venv and .cache)
	rm -rf models results var .pytest_cache
