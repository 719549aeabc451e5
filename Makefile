# Two commands do all set-up on a fresh Debian machine with Python 3.11:
#   make demo   - install, then open the Gradio demo on the shipped default model
#   make test   - install, then run the test suite
# Everything installs into .venv; Debian packages are installed with apt-get
# when missing (needs root).

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
APT_PACKAGES := espeak-ng flite festival festvox-kallpc16k festvox-kdlpc16k festvox-us-slt-hts \
	sox pocketsphinx-testdata chromium chromium-driver
PYTEST_ARGS ?=

.PHONY: setup apt demo test convert-example corpus train-default default-model clean

setup: apt $(VENV)/.installed

apt:
	@missing=""; for p in $(APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
		echo "installing Debian packages:$$missing"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing; \
	fi

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e ".[eval,demo,dev]"
	touch $@

demo: setup
	$(BIN)/python app.py

convert-example: setup
	$(BIN)/voicevae convert voicevae/assets/default/examples --target flite_slt --out-dir out/example --force

test: setup
	$(BIN)/python -m pytest -q $(PYTEST_ARGS)

corpus: setup
	$(BIN)/voicevae make-corpus data/synthetic

train-default: setup
	$(BIN)/voicevae train --config recipes/synthetic/config.yaml

clean:
	rm -rf $(VENV) out

# Rebuild the shipped default from a finished training run (see README).
RUN ?= runs/synth_cycle
default-model: setup
	mkdir -p voicevae/assets/default/examples
	cp $(RUN)/model.pt voicevae/assets/default/model.pt
	$(BIN)/voicevae vectors --model voicevae/assets/default/model.pt --manifest data/synthetic/manifest.csv --split train -o voicevae/assets/default/vectors.pt --force
	for spk in flite_awb festival_ked flite_slt espeak_us_m1; do \
		f=$$(grep -m1 -E "^wavs/$$spk/.*,(valid|test_voice),[mf]," data/synthetic/manifest.csv | cut -d, -f1); \
		cp data/synthetic/$$f voicevae/assets/default/examples/$$spk.wav; \
	done
