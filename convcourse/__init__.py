"""Shared helpers of the conv2d-course.

The book, the notebooks and the grader import this package; it imports none of them
(only numpy, torch and matplotlib). Each module has one job:

- ``grids``: draw small arrays as labelled grids, the picture every chapter builds on.
"""

__version__ = "0.1.0"
