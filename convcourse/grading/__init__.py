"""The assignments' checking, for the notebooks' tests and the grader. Each module has one job:

- ``cases``: the seeded grid of cases the hidden tests run (every parameter, every awkward case).
- ``guard``: refuse library convolutions, seen at the operator level.
- ``diagnose``: one sentence saying what is wrong with an output, naming common mistakes.
- ``checks``: what the tests call: run a learner's function, compare, fail with that sentence;
  one way to check many cases (``check_all``), one sign of an unwritten function (``NotWritten``).
- ``module_checks``: the same for gradients and for ``ScratchConv2d`` against ``nn.Conv2d``.
- ``timing``: the medians that the notebooks' speed cells and ``make bench`` report.
"""
