# Every install step lives here: `make demo` and `make test` work on a fresh clone.

PYTHON ?= python3
VENV ?= .venv
# Installed before the package, so pip does not pull a multi-GB CUDA build of torch.
# Override for another build, e.g. make install TORCH_SPEC="torch==2.13.0 --index-url https://download.pytorch.org/whl/cu128"
TORCH_SPEC ?= torch==2.13.0
BIN := $(VENV)/bin
DALLE := $(BIN)/dalle
PROMPT ?= orange dinosaur in a suit

# Recipe of the shipped model (see weights/README.md). Outputs go to build/weights;
# each stage leaves a .done marker, so an interrupted `make weights` resumes.
WB := build/weights
WEIGHTS_SEED ?= 0
WEIGHTS_IMAGES ?= 30000
VAE_STEPS ?= 2400
TRANSFORMER_STEPS ?= 2400

.PHONY: install demo test test-fast lint weights clean

install: $(VENV)/.installed

$(VENV)/.installed: setup.cfg pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install $(TORCH_SPEC)
	$(BIN)/pip install -e ".[dev]"
	touch $@

demo: install
	$(DALLE) generate "$(PROMPT)" -n 4 --seed 0 --out-dir outputs

test: install
	$(BIN)/python -m pytest -q

test-fast: install
	$(BIN)/python -m pytest -q -m "not slow"

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

weights: install $(WB)/transformer.done
	cp $(WB)/dalle-toy.safetensors weights/dalle-toy.safetensors
	$(BIN)/python scripts/model_card_figures.py --model weights/dalle-toy.safetensors --data $(WB)/toyworld-fresh --out docs

$(WB)/data.done: | install
	$(DALLE) data toyworld $(WB)/toyworld --count $(WEIGHTS_IMAGES) --seed $(WEIGHTS_SEED)
	$(DALLE) data toyworld $(WB)/toyworld-fresh --count 512 --seed $$(( $(WEIGHTS_SEED) + 1000 ))
	touch $@

$(WB)/vae.done: $(WB)/data.done
	$(DALLE) train vae $(WB)/toyworld --out $(WB)/vae.safetensors --steps $(VAE_STEPS) --batch-size 32 \
		--lr 2e-3 --hidden-dims 64,128,256 --codebook-size 1024 --recon-loss l1 --checkpoint-every 400 \
		--seed $(WEIGHTS_SEED) --device cpu --resume
	touch $@

$(WB)/codes.done: $(WB)/vae.done
	$(DALLE) encode $(WB)/toyworld --model $(WB)/vae.safetensors -o $(WB)/codes.safetensors --device cpu
	touch $@

$(WB)/transformer.done: $(WB)/codes.done
	$(DALLE) train transformer $(WB)/codes.safetensors --vae $(WB)/vae.safetensors --out $(WB)/dalle-toy.safetensors \
		--steps $(TRANSFORMER_STEPS) --batch-size 64 --lr 1e-3 --text-len 32 --vocab-size 1024 \
		--n-layer 6 --n-head 8 --n-embd 256 --caption-dropout 0.1 --amp bf16 --dtype float16 \
		--checkpoint-every 400 --sample-prompt "$(PROMPT)" --sample-prompt "一个穿着西服的橙色恐龙" \
		--seed $(WEIGHTS_SEED) --device cpu --resume
	touch $@

clean:
	rm -rf build outputs .pytest_cache
