# Two commands for a fresh Linux machine with Python >= 3.10:
#   make book   create .venv, install everything, execute the chapters, build the HTML book
#   make test   create .venv, install everything, run the whole test suite (no network)
#   make test-colab                 the Colab-like environment check (Python 3.13, numpy 2; needs PyPI)
#   make exercises                  regenerate the student notebooks, tests and Gradescope zips from exercises/source
#   make grade SUBMISSIONS=folder/  grade every notebook in folder/ into scores.csv and a summary per
#                                   question, scores.md (OUT=... to rename; JOBS=N kernels at once; in bubblewrap, SANDBOX=0: without;
#                                   HIDDEN_SEED=n: hidden tests on inputs drawn from your seed)
#   make zoo                        train the zoo's recipes (zoo_recipe.ZOO) and publish them into lic_teach/zoo_weights (resumable;
#                                   FAMILIES="a b"; MINUTES=N a family; DATA=photos/ into ZOO=my-zoo/, its runs in my-zoo/study; DEVICE=cuda)
#   make zoo-study                  the zoo's recipe study into lic_teach/studies/zoo_recipe (resumable; MINUTES=N a recipe)
#   make gpu-check                  on a GPU machine: chapters on CUDA, training and coding times, streams
#                                   encoded on CUDA and decoded on the CPU, into gpu-check.md (OUT=...)
#   make studies                    train the chapters' zoo-scale studies into lic_teach/studies (resumable; JOBS=N)
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-stamp

.PHONY: install book test test-colab lab exercises grade zoo zoo-study studies gpu-check clean

install: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --progress-bar off -e ".[book,dev]"
	$(PY) -m ipykernel install --sys-prefix --name python3 >/dev/null
	touch $(STAMP)

book: $(STAMP)
	$(VENV)/bin/jupyter-book build . --warningiserror --keep-going
	@echo "The book is at: $(CURDIR)/_build/html/index.html"

# Tests time the chapters: torch's OpenMP threads then sleep rather than spin while they
# wait, so a busy neighbour on a 2-core machine cannot slow a chapter 2-20 times (measured:
# chapter 4 at smoke with one core busy, 74 s spinning, 30 s passive; idle: 20 % slower).
TEST_ENV := OMP_WAIT_POLICY=PASSIVE

# The unit tests run in two processes of one torch thread each (measured: 70 s against
# 142 s in one process of two threads, whose small ops wait on each other); then the
# slow tests in one process, since they time the chapters and start kernels of their own.
test: $(STAMP)
	$(TEST_ENV) OMP_NUM_THREADS=1 $(PY) -m pytest -m "not slow and not colab" -n 2
	$(TEST_ENV) $(PY) -m pytest -m "slow and not colab"

test-colab: $(STAMP)
	$(TEST_ENV) $(PY) -m pytest -m colab -s tests/test_colab_environment.py

exercises: $(STAMP)
	$(PY) exercises/assign.py

grade: $(STAMP)
	@test -n "$(SUBMISSIONS)" || { echo "usage: make grade SUBMISSIONS=folder/ [OUT=scores.csv] [JOBS=N] [HIDDEN_SEED=n]"; exit 2; }
	$(PY) -m lic_teach.grading "$(SUBMISSIONS)" --out "$(or $(OUT),scores.csv)" $(if $(JOBS),--jobs $(JOBS)) $(if $(filter 0,$(SANDBOX)),--no-sandbox) $(if $(HIDDEN_SEED),--hidden-seed $(HIDDEN_SEED))

zoo: $(STAMP)
	$(PY) -m lic_teach.experiments.zoo_recipe --zoo $(if $(FAMILIES),--families "$(FAMILIES)") $(if $(DATA),--data $(DATA) --folder $(or $(ZOO),my-zoo)/study --to-zoo $(or $(ZOO),my-zoo)) $(if $(MINUTES),--minutes-per-recipe $(MINUTES)) $(if $(DEVICE),--device $(DEVICE))

zoo-study: $(STAMP)
	$(PY) -m lic_teach.experiments.zoo_recipe --interleave $(if $(MINUTES),--minutes-per-recipe $(MINUTES))

gpu-check: $(STAMP)
	$(PY) -m lic_teach.gpu_check --out "$(or $(OUT),gpu-check.md)"

studies: $(STAMP)
	$(PY) -m lic_teach.experiments.rectification $(if $(JOBS),--jobs $(JOBS))
	$(PY) -m lic_teach.experiments.lattice_vq

lab: $(STAMP)
	$(VENV)/bin/jupyter lab book/

clean:
	rm -rf _build .pytest_cache
