#!/usr/bin/env bash
# Gradescope runs this once, as root, while it builds the autograder's image (it has the
# internet then; grading does not need it). It installs bubblewrap, the sandbox that learners'
# code runs in, and a Python environment in /autograder/venv with the course's dependencies:
# the pins of pyproject.toml (tests/test_gradescope.py checks that they agree), PyTorch as
# its CPU build, and what the grader reads notebooks with.
set -euxo pipefail
VENV="${AUTOGRADER_ROOT:-/autograder}/venv"

export DEBIAN_FRONTEND=noninteractive
apt-get update
apt-get install -y --no-install-recommends bubblewrap python3 python3-venv python3-pip

python3 -m venv "$VENV"
"$VENV/bin/pip" install --upgrade pip
"$VENV/bin/pip" install "torch==2.13.*" --index-url https://download.pytorch.org/whl/cpu
"$VENV/bin/pip" install "numpy>=1.26,<3" "matplotlib>=3.8,<4" \
  "nbformat>=5.9" "nbconvert>=7" "ipython>=8" \
  "scikit-learn>=1.4,<2"  # assignment 4's training check reads load_digits (grader side)

# Stop here, not at the first submission, if the environment is broken; and say in the build
# log whether the sandbox works in this image (run_autograder checks again every time).
"$VENV/bin/python" -c "import matplotlib, nbformat, numpy, sklearn, torch; print('torch', torch.__version__)"
cd "$(dirname "$0")"
"$VENV/bin/python" -c "from autograder.sandbox import bwrap_problem
print('sandbox:', bwrap_problem() or 'bubblewrap works')"
