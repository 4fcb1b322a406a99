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
WEIGHTS_IMAGES ?= 50000
VAE_STEPS ?= 5000
TRANSFORMER_STEPS ?= 4000
DECODER_STEPS ?= 8000
DECODER_TUNE_STEPS ?= 2000

.PHONY: install demo test test-fast lint weights clean bench bench-peers

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

weights: install $(WB)/decoder-tune.done
	cp $(WB)/dalle-toy-decoder-tuned.safetensors weights/dalle-toy.safetensors
	$(BIN)/python scripts/model_card_figures.py --model weights/dalle-toy.safetensors --data $(WB)/toyworld-fresh --out docs

$(WB)/data.done: | install
	$(DALLE) data toyworld $(WB)/toyworld --count $(WEIGHTS_IMAGES) --seed $(WEIGHTS_SEED)
	$(DALLE) data toyworld $(WB)/toyworld-fresh --count 512 --seed $$(( $(WEIGHTS_SEED) + 1000 ))
	touch $@

$(WB)/vae.done: $(WB)/data.done
	$(DALLE) train vae $(WB)/toyworld --out $(WB)/vae.safetensors --steps $(VAE_STEPS) --batch-size 32 \
		--lr 2e-3 --hidden-dims 64,128,256 --num-res-blocks 2 --codebook-size 1024 --recon-loss l1 --amp auto \
		--checkpoint-every 500 --seed $(WEIGHTS_SEED) --device cpu --resume
	touch $@

$(WB)/codes.done: $(WB)/vae.done
	$(DALLE) encode $(WB)/toyworld --model $(WB)/vae.safetensors -o $(WB)/codes.safetensors --device cpu
	touch $@

$(WB)/transformer.done: $(WB)/codes.done
	$(DALLE) train transformer $(WB)/codes.safetensors --vae $(WB)/vae.safetensors --out $(WB)/dalle-toy.safetensors \
		--steps $(TRANSFORMER_STEPS) --batch-size 64 --lr 1e-3 --text-len 32 --vocab-size 1024 \
		--n-layer 6 --n-head 8 --n-embd 256 --caption-dropout 0.1 --amp auto --dtype float16 \
		--checkpoint-every 400 --sample-prompt "$(PROMPT)" --sample-prompt "一个穿着西服的橙色恐龙" \
		--seed $(WEIGHTS_SEED) --device cpu --resume
	touch $@

# Last, because it changes no token: the transformer trained above stays valid with the new decoder,
# a wider one than the VAE stage trained, from random weights.
$(WB)/decoder.done: $(WB)/transformer.done
	$(DALLE) train decoder $(WB)/toyworld --model $(WB)/dalle-toy.safetensors --out $(WB)/dalle-toy-decoder.safetensors \
		--new-decoder 384,192,64 --new-decoder-res-blocks 3 --steps $(DECODER_STEPS) --batch-size 32 --lr 1e-3 \
		--amp auto --checkpoint-every 500 --seed $(WEIGHTS_SEED) --device cpu --resume
	touch $@

# Then more steps on that decoder at a lower learning rate: its PSNR still rose when the schedule above ended.
$(WB)/decoder-tune.done: $(WB)/decoder.done
	$(DALLE) train decoder $(WB)/toyworld --model $(WB)/dalle-toy-decoder.safetensors \
		--out $(WB)/dalle-toy-decoder-tuned.safetensors --steps $(DECODER_TUNE_STEPS) --batch-size 32 --lr 2e-4 \
		--amp auto --checkpoint-every 500 --seed $(WEIGHTS_SEED) --device cpu --resume
	touch $@

clean:
	rm -rf build outputs .pytest_cache

# Benchmarks: each target writes its section of docs/benchmarks.json, then renders docs/benchmarks.md.
# Run them on an idle machine; both exit at start when the 1-minute load average is above BENCH_MAX_LOAD.
BENCH_MAX_LOAD ?= 1.0
PEERS_VENV ?= .venv-peers
PEERS_BIN := $(PEERS_VENV)/bin
# Pinned in every pip command below, so no step can swap in another (CUDA) torch build.
PEERS_TORCH ?= torch==2.13.0

bench: install
	$(BIN)/python -m bench.run --max-load $(BENCH_MAX_LOAD)
	$(BIN)/python -m bench.report

bench-peers: $(PEERS_VENV)/.installed
	$(PEERS_BIN)/python -W ignore::DeprecationWarning -m bench.peers --max-load $(BENCH_MAX_LOAD)
	$(PEERS_BIN)/python -m bench.report

# dalle-pytorch 1.6.6 and its pinned dependencies, importable on torch 2.13.0 (CPU) without torchvision.
$(PEERS_VENV)/.installed: bench/stubs/torchvision/__init__.py setup.cfg
	rm -rf $(PEERS_VENV)
	$(PYTHON) -m venv $(PEERS_VENV)
	$(PEERS_BIN)/pip install $(PEERS_TORCH) "cython<3" "setuptools<81" wheel numpy
	# youtokentome 1.0.6 is an sdist whose build needs Cython < 3 and the torch-pinned environment above.
	$(PEERS_BIN)/pip install --no-build-isolation $(PEERS_TORCH) youtokentome==1.0.6
	# Both declare torchvision, which has no build for this torch; the stub copied below stands in for it.
	$(PEERS_BIN)/pip install --no-deps $(PEERS_TORCH) dalle-pytorch==1.6.6 taming-transformers-rom1504==0.0.6
	# transformers 5 imports torchvision.transforms whenever a torchvision module is importable; 4.57 checks
	# for an installed distribution first, so it ignores the stub.
	$(PEERS_BIN)/pip install $(PEERS_TORCH) "setuptools<81" transformers==4.57.6 pytorch-lightning==1.7.7 \
		torchmetrics==0.10.3 axial-positional-embedding==0.3.12 einops==0.8.2 rotary-embedding-torch==0.9.1 \
		ftfy regex tqdm omegaconf pyyaml requests packaging pillow
	$(PEERS_BIN)/pip install --no-build-isolation $(PEERS_TORCH) "setuptools<81" transformers==4.57.6 -e .
	cp -r bench/stubs/torchvision "$$($(PEERS_BIN)/python -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')/"
	$(PEERS_BIN)/python -W ignore -c "import dalle_pytorch, dalle.model; print('dalle-pytorch', dalle_pytorch.__version__)"
	touch $@

# The judge that `dalle eval` scores images with: a classifier trained only on
# toy-world scenes rendered on the fly, never on generated images.
JUDGE_SEED ?= 0
JUDGE_STEPS ?= 1000

.PHONY: judge
judge: install
	$(DALLE) train judge weights/judge.safetensors --steps $(JUDGE_STEPS) --batch-size 64 --lr 2e-3 --seed $(JUDGE_SEED)
