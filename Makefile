# conv2d-course. The two commands: `make book` and `make test`; both set up .venv first.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
# The book to build, extra jupyter-book flags, and the package its pages import
# (tests point these at scratch copies).
BOOK      ?= book
BOOK_ARGS ?=
PACKAGE   ?= convcourse
BUILD     := $(BOOK)/_build

# nbgrader reads autograder/nbgrader_config.py (the course layout) through this path, and
# runs tools of the environment (alembic) by name.
export JUPYTER_CONFIG_PATH := $(CURDIR)/autograder
export PATH := $(CURDIR)/$(BIN):$(PATH)
ASSIGNMENTS := $(notdir $(wildcard solutions/[0-9]*))

.PHONY: help venv book test test-fast lab release grade check gradescope bench gpu-check \
        clean sandbox-packages book-packages test-packages

# Debian packages the targets need, each as <command or file>:<package>. The sandbox's for
# grading; the browser's (and a font for it to draw the pages with) for the tests.
SANDBOX_PACKAGES := bwrap:bubblewrap
BROWSER_PACKAGES := chromium:chromium chromedriver:chromium-driver \
                    /usr/share/fonts/truetype/dejavu/DejaVuSans.ttf:fonts-dejavu-core
# The book's torch.compile section: TorchInductor writes C++ and compiles it with g++.
BOOK_PACKAGES := g++:g++
# A PostgreSQL server for the shared-gradebook tests (Debian keeps initdb in
# /usr/lib/postgresql/<version>/bin, off the PATH).
POSTGRES_PACKAGES := $(or $(firstword $(wildcard /usr/lib/postgresql/*/bin/initdb)),initdb):postgresql
# The JupyterHub test's proxy: Node.js and npm from Debian, then configurable-http-proxy from
# npm into .venv (its bin/ and lib/node_modules/). 4.x: 5.x needs a newer Node than Debian 12's.
HUB_PACKAGES := node:nodejs npm:npm
HUB_PROXY    := configurable-http-proxy@4.6.3

# Install the missing ones with apt-get, as root or through password-less sudo; otherwise stop
# before anything runs, with the one command that installs them.
define system_packages
	@missing=""; for need in $(1); do have="$${need%:*}"; \
	  command -v "$$have" >/dev/null 2>&1 || [ -e "$$have" ] || missing="$$missing $${need##*:}"; \
	done; [ -z "$$missing" ] && exit 0; \
	if [ "$$(id -u)" = 0 ]; then sudo=""; elif sudo -n true 2>/dev/null; then sudo="sudo -n"; \
	else echo "make: missing Debian packages:$$missing; install them with: sudo apt-get \
	install -y --no-install-recommends$$missing" >&2; exit 1; fi; \
	command -v apt-get >/dev/null || { echo "make: missing packages:$$missing (no apt-get \
	here: install them with your system's package manager)" >&2; exit 1; }; \
	echo "Installing Debian packages:$$missing"; $$sudo apt-get update -qq && \
	$$sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
	  $$missing
endef

sandbox-packages:
	$(call system_packages,$(SANDBOX_PACKAGES))

book-packages:
	$(call system_packages,$(BOOK_PACKAGES))

test-packages:
	$(call system_packages,$(SANDBOX_PACKAGES) $(BROWSER_PACKAGES) $(BOOK_PACKAGES) \
	  $(POSTGRES_PACKAGES) $(HUB_PACKAGES))
	@test -x $(BIN)/configurable-http-proxy || npm install --global --prefix $(VENV) \
	  --no-fund --no-audit --loglevel=error $(HUB_PROXY)

help:
	@echo "make book   build the HTML book into book/_build/html (warnings are errors)"
	@echo "make test   run the whole test suite (builds the book, opens it in headless Chromium,"
	@echo "           grades in the sandbox); installs bubblewrap and Chromium first if missing"
	@echo "make test-fast  the unit tests only (under a minute): no book, browser or sandbox"
	@echo "make lab    open JupyterLab on the course (notebooks/, book/)"
	@echo "make release  regenerate notebooks/ from solutions/ (nbgrader generate_assignment)"
	@echo "make grade ASSIGNMENT=02-numpy SUBMISSIONS=folder-or.zip [WORKERS=n] [UNSAFE=1]"
	@echo "           grade a class in the bubblewrap sandbox: gradebook, feedback, grades.csv"
	@echo "make check NOTEBOOK=notebooks/02-numpy/conv2d-numpy.ipynb   grade your own notebook,"
	@echo "           hidden tests included (sandboxed where bubblewrap runs): points, feedback"
	@echo "make gradescope ASSIGNMENT=02-numpy   build autograder/dist/<id>-gradescope.zip"
	@echo "make bench  time the reference solutions against F.conv2d, and make grade against"
	@echo "           plain nbgrader autograde (submissions per minute, same batch)"
	@echo "make gpu-check  on a GPU machine: the solutions on CUDA against cuDNN and autograd,"
	@echo "           the notebooks, the bench's CUDA rows; a report for the issue note (no"
	@echo "           .venv needed: make gpu-check PYTHON=python3 with a system CUDA torch)"
	@echo "make clean  remove builds and caches (keeps .venv)"

# One environment for everything: the shared package, the book, nbgrader and the test tools.
$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e ".[dev]"
	# Plain nbgrader commands, run anywhere with this environment, read the course's config.
	mkdir -p $(VENV)/etc/jupyter
	echo 'load_subconfig("$(CURDIR)/autograder/nbgrader_config.py")  # noqa: F821' \
	  > $(VENV)/etc/jupyter/nbgrader_config.py
	touch $@

venv: $(STAMP)

# The execution cache re-runs a page when its own code changes, not when the package it
# imports does: a newer file of the book's part of $(PACKAGE)/ (its figures and the shared
# modules beside them, not its grading) throws the old build away.
$(BUILD)/.package-stamp: $(wildcard $(PACKAGE)/*.py $(PACKAGE)/figures/*.py)
	rm -rf $(BUILD)
	mkdir -p $(BUILD)
	touch $@

book: book-packages $(STAMP) $(BUILD)/.package-stamp
	IPYTHONDIR=$(CURDIR)/book/_ipython $(BIN)/jupyter-book build $(BOOK) -W -n --keep-going $(BOOK_ARGS)

# The suite on pytest-xdist, one worker per CPU (logical: `auto` counts a 2-vCPU machine with
# one physical core as one) and at most 4 (the book's build, the longest unit of work, sets the
# pace beyond that); each test file on one worker (tests/conftest.py says why).
PARALLEL := -n logical --maxprocesses 4 --dist loadfile

test: test-packages $(STAMP)
	$(BIN)/pytest $(PARALLEL)

# Contributors' lane: the unit tests, no book build, browser, sandbox or slow run (pyproject).
test-fast: $(STAMP)
	$(BIN)/pytest $(PARALLEL) -m "not (book or browser or sandbox or slow)"

lab: $(STAMP)
	$(BIN)/jupyter lab

# The learners' notebooks are generated, never edited: solution regions and hidden tests out.
release: $(STAMP)
	for a in $(ASSIGNMENTS); do \
	  $(BIN)/nbgrader generate_assignment $$a --force --no-db || exit 1; done

# Grading: learner code runs only in the sandbox (autograder/); UNSAFE=1 runs it without.
# DB=<SQLAlchemy URL> and DEADLINE=<ISO time with offset> reach it as environment variables
# (as LMS and ROSTER do); the course's own gradebook is CONVCOURSE_DB_URL (autograder/settings.py).
grade: $(if $(UNSAFE),,sandbox-packages) $(STAMP)
	@test -n "$(ASSIGNMENT)" -a -n "$(SUBMISSIONS)" || { echo "usage: make grade \
	  ASSIGNMENT=<id> SUBMISSIONS=<folder of <student>/<notebook>.ipynb, or an LMS .zip> \
	  [DB=<gradebook URL>] [DEADLINE=2026-12-01T23:59:00+00:00]"; exit 2; }
	$(BIN)/python -m autograder.grade $(ASSIGNMENT) $(SUBMISSIONS) \
	  $(if $(WORKERS),--workers $(WORKERS)) $(if $(UNSAFE),--unsafe) $(GRADE_ARGS)

# A learner's self-check: one notebook, every test, the points and feedback in the terminal.
check: $(STAMP)
	@test -n "$(NOTEBOOK)" || { echo "usage: make check NOTEBOOK=<your notebook>, e.g. \
	NOTEBOOK=notebooks/02-numpy/conv2d-numpy.ipynb"; exit 2; }
	$(BIN)/python -m autograder.check $(NOTEBOOK)

gradescope: $(STAMP)
	@test -n "$(ASSIGNMENT)" || { echo "usage: make gradescope ASSIGNMENT=<id>"; exit 2; }
	$(BIN)/python -m autograder.gradescope $(ASSIGNMENT) $(if $(UNSAFE),--unsafe)

# The benchmarks import tests/ helpers, which import the grader from the repository root.
bench: sandbox-packages $(STAMP)
	cd tests && export PYTHONPATH=$(CURDIR) && ../$(BIN)/python bench.py $(BENCH_ARGS) && \
	  ../$(BIN)/python bench_grading.py $(BENCH_ARGS)

# No .venv: a GPU machine may offer only a system Python with a CUDA torch, numpy and
# scikit-learn. $(PYTHON) (python3) is .venv's where there is one, PATH putting it first.
gpu-check:
	$(PYTHON) tests/gpu_check.py $(GPU_CHECK_ARGS)

clean:
	rm -rf book/_build .pytest_cache .ruff_cache
	find . -name __pycache__ -not -path "./$(VENV)/*" -prune -exec rm -rf {} +
