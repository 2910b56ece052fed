"""The book's figures. Each module has one job:

- ``grids``: draw small arrays as labelled grids, the picture every chapter builds on.
- ``sliding``: the sliding window: where it goes, what it reads and writes, its animation.
- ``padding``: padded inputs for each ``padding_mode``, and how often each cell is read.
- ``dilation``: where a dilated kernel's taps fall, and how receptive fields grow.
- ``channels``: per-channel partial sums and which channels each group connects.
- ``gradients``: where each output gradient lands, and grad_x as a transposed convolution.
- ``training``: sample digits, learned filters and feature maps of a trained network.
- ``player``: an animation as an HTML player that works with no network.

Every figure is computed with PyTorch (``F.conv2d``, ``F.pad``, autograd), so it cannot
disagree with the layer it shows.
"""
