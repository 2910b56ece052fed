"""Shared helpers of the conv2d-course.

The book, the notebooks and the grader import this package; it imports none of them
(only numpy, torch and matplotlib). It holds two jobs that meet at one module:

- ``reference``: one call of conv2d (:class:`Conv2dCase`) and what ``nn.Conv2d`` outputs for
  it: the truth both jobs are measured against.
- ``figures``: the book's pictures (sliding windows, padding, dilation, channels, animations).
- ``grading``: the assignments' checking (case grids, the library-convolution guard, the
  diagnosis of wrong outputs, the checks the tests call).

The two never import each other, so a change to one leaves the other's caches alone: the
book's execution cache follows ``figures/`` and ``reference.py``; the grader's fingerprint,
and what the sandbox is given, follow ``grading/`` and ``reference.py``.
"""

__version__ = "0.1.0"
