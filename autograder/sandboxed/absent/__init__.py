"""What the grader's sandbox shows in place of a package whose functions break the course's one
rule (SciPy: correlate and convolve). It is never imported outside the sandbox; inside it, it
is imported under the package's name and says why that package is not there."""

raise ModuleNotFoundError(
    f"{__name__} is not available while your notebook is graded: its correlate and convolve "
    "functions are library convolutions, which the course's one rule keeps out of graded "
    "functions. Compute the convolution yourself with NumPy or PyTorch tensor operations.",
    name=__name__,
)
