"""Shared helpers of the conv2d-course.

The book, the notebooks and the grader import this package; it imports none of them
(only numpy, torch and matplotlib). Each module has one job:

- ``grids``: draw small arrays as labelled grids, the picture every chapter builds on.
- ``sliding``: the sliding window: where it goes, what it reads and writes, its animation.
- ``padding``: padded inputs for each ``padding_mode``, and how often each cell is read.
- ``dilation``: where a dilated kernel's taps fall, and how receptive fields grow.
- ``channels``: per-channel partial sums and which channels each group connects.
- ``player``: an animation as an HTML player that works with no network.

For the assignments' tests and the grader:

- ``reference``: one call of conv2d (:class:`Conv2dCase`) and what ``nn.Conv2d`` outputs for it.
- ``cases``: the seeded grid of cases the hidden tests run (every parameter, every awkward case).
- ``guard``: refuse library convolutions, seen at the operator level.
- ``diagnose``: one sentence saying what is wrong with an output, naming common mistakes.
- ``checks``: what the tests call: run a learner's function, compare, fail with that sentence.
- ``module_checks``: the same for gradients and for ``ScratchConv2d`` against ``nn.Conv2d``.

Every figure is computed with PyTorch (``F.conv2d``, ``F.pad``, autograd), so it cannot
disagree with the layer it shows.
"""

__version__ = "0.1.0"
