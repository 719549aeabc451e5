# Two commands do all set-up on a fresh Debian machine with Python 3.11:
#   make demo   - install, then open the Gradio demo on the shipped default model
#   make test   - install, then run the test suite
# Everything installs into .venv from requirements.lock (exact versions and
# hashes); Debian packages are installed with apt-get when missing (needs root).
#   make check  - the lock check, ruff (lint + format) and mypy, as CI runs them
#   make lock   - refresh requirements.lock from pyproject.toml (see README)

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
APT_PACKAGES := espeak-ng flite festival festvox-kallpc16k festvox-kdlpc16k festvox-us-slt-hts \
	sox pocketsphinx-testdata chromium chromium-driver libportaudio2
PYTEST_ARGS ?=
LOCK := requirements.lock

.PHONY: setup apt demo test check lock convert-example corpus corpus-recorded train-default train-synthetic default-model clean

setup: apt $(VENV)/.installed

apt:
	@missing=""; for p in $(APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
		echo "installing Debian packages:$$missing"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing; \
	fi

# The lock pins every package with its hashes (pip then refuses anything
# else); the project itself goes in editable, without touching the pins.
$(VENV)/.installed: pyproject.toml $(LOCK)
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --require-hashes -r $(LOCK)
	$(BIN)/pip install -q --no-deps --no-build-isolation -e .
	touch $@

demo: setup
	$(BIN)/python app.py

convert-example: setup
	$(BIN)/voicevae convert voicevae/assets/default/examples --target flite_slt --out-dir out/example --force

test: setup
	$(BIN)/python -m pytest -q $(PYTEST_ARGS)

check: setup
	$(BIN)/python .ci/check_lock.py $(LOCK)
	$(BIN)/pip check
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

# Needs uv (in the dev extra). Resolves for Debian 12's Python 3.11 on x86-64
# from PyPI alone, whatever index this machine's pip is configured with.
lock:
	$(BIN)/uv pip compile pyproject.toml --extra eval --extra demo --extra export --extra live --extra dev \
		--python-version 3.11 --python-platform x86_64-manylinux_2_28 --generate-hashes \
		--index-url https://pypi.org/simple -c lock-constraints.txt -o $(LOCK)

corpus: setup data/synthetic/manifest.csv

# Each corpus is built once: make-corpus and make-recorded refuse to overwrite
# one, so a built corpus is kept (remove its folder to rebuild it).
data/synthetic/manifest.csv: | setup
	$(BIN)/voicevae make-corpus data/synthetic

# Real recorded talkers from Debian main (recipes/recorded/README.md), merged with the synthetic corpus.
RECORDED_PACKAGES := festvox-ru asterisk-core-sounds-en-wav asterisk-core-sounds-es-wav asterisk-core-sounds-fr-wav \
	asterisk-core-sounds-it-wav asterisk-core-sounds-ru-wav asterisk-core-sounds-en asterisk-core-sounds-es \
	asterisk-core-sounds-fr asterisk-core-sounds-it asterisk-core-sounds-ru asterisk-prompt-it-menardi-wav \
	fillets-ng-data fillets-ng-data-cs fillets-ng-data-nl hedgewars-data codec2-examples
corpus-recorded: corpus data/recorded/manifest.csv
	$(BIN)/voicevae merge-manifests data/synthetic/manifest.csv data/recorded/manifest.csv -o data/combined/manifest.csv --force

data/recorded/manifest.csv: | setup
	$(MAKE) apt APT_PACKAGES="$(RECORDED_PACKAGES)"
	$(BIN)/voicevae make-recorded data/recorded

# The shipped default: the recorded recipe with channel augmentation shown to the content
# encoder only (README, "The shipped default model"); about 45 min on one thread.
DEFAULT_SETS := --set channel.p_gain=0.5 --set channel.p_noise=0.3 --set channel.p_reverb=0.3 \
	--set channel.p_band=0.2 --set channel.encoders=content
train-default: setup
	$(BIN)/voicevae train --config recipes/recorded/config.yaml --out-dir runs/default $(DEFAULT_SETS)

# The previous default (voicevae/assets/synthetic): the synthetic recipe alone.
train-synthetic: setup
	$(BIN)/voicevae train --config recipes/synthetic/config.yaml

clean:
	rm -rf $(VENV) out

# Rebuild the shipped default from a finished training run (see README). The vectors
# average every clip of the two named targets the protocols use and every third
# training clip of the other voices (data/combined/manifest_vec3.csv, made here).
RUN ?= runs/default
default-model: setup
	mkdir -p voicevae/assets/default/examples
	cp $(RUN)/model.pt voicevae/assets/default/model.pt
	$(BIN)/python recipes/recorded/every_third.py data/combined/manifest.csv data/combined/manifest_vec3.csv
	$(BIN)/voicevae vectors --model voicevae/assets/default/model.pt --manifest data/combined/manifest_vec3.csv --split train \
		--labels gender,engine,corpus,language,style --f0-clips 10 -o voicevae/assets/default/vectors.pt --force
	for spk in flite_awb festival_ked flite_slt espeak_us_m1; do \
		f=$$(grep -m1 -E "^wavs/$$spk/.*,(valid|test_voice),[mf]," data/synthetic/manifest.csv | cut -d, -f1); \
		cp data/synthetic/$$f voicevae/assets/default/examples/$$spk.wav; \
	done
