"""What the grader's sandbox shows in place of a package it lacks (autograder/sandbox.py binds
this folder over the package's own). It is never imported outside the sandbox; inside it, it is
imported under the package's name and says why that package is not there, and what to do."""

WHY = {
    "scipy": "its correlate and convolve functions are library convolutions, which the course's "
             "one rule keeps out of graded functions. Compute the convolution yourself with "
             "NumPy or PyTorch tensor operations.",
    "torch": "this assignment is graded with NumPy alone, so that no library convolution can "
             "compute a graded function. Take 'import torch' (and every use of PyTorch) out of "
             "the cells that define your functions: the notebook's own checks use PyTorch, and "
             "run beside the grader, not in your functions' sandbox.",
}

raise ModuleNotFoundError(
    f"{__name__} is not available while your notebook is graded: "
    f"{WHY.get(__name__, 'the grader leaves it out.')}",
    name=__name__,
)
