"""The assignments' checking, for the notebooks' tests and the grader. Each module has one job:

- ``cases``: the seeded grid of cases the hidden tests run (every parameter, every awkward case).
- ``guard``: refuse library convolutions, seen at the operator level.
- ``diagnose``: one sentence saying what is wrong with an output, naming common mistakes;
  ``structure`` explains any other wrong output by how it relates to the right one.
- ``checks``: what the tests call: run a learner's function, compare, fail with that sentence;
  one way to check many cases (``check_all``), one sign of an unwritten function (``NotWritten``).
- ``module_checks``: the same for gradients and for ``ScratchConv2d`` against ``nn.Conv2d``.
- ``backward``: the backward pass by one index rule, with switches for the classic mistakes;
  ``backward_checks``: assignment 4's checks (gradients, the autograd Function, training) and
  ``probes``: the functions its numerical-gradient tests hand to the learner.
- ``timing``: the medians that the notebooks' speed cells and ``make bench`` report.
"""

#: The environment variable that holds a course's key, which draws the hidden inputs
#: (``cases``): an HMAC of the instructor's secret (autograder/secret.py), set by the trusted
#: grader in its own process, never the secret. Named here, where the grader can read it
#: without importing PyTorch.
COURSE_KEY = "CONVCOURSE_COURSE_KEY"
