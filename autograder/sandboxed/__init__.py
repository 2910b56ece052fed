"""What runs inside the bubblewrap sandbox, and nothing else: the trust boundary as a folder.

The sandbox mounts this folder, read-only, as ``/grader``, and runs ``runner.py`` from it:

- ``runner.py`` runs the learner's cells, then answers the grader's requests;
- ``seal.py`` refuses PyTorch's convolutions to the graded calls;
- ``wire.py`` is the plain-data message format (the trusted grader imports it from here too);
- ``absent/`` is what the sandbox shows in place of SciPy.

These files import nothing from outside this folder but the standard library, torch, numpy,
IPython (for notebook magics) and the shared package's grading part (``convcourse.grading``,
``convcourse.reference``): tests/test_runner.py checks it. Inside the sandbox the modules import
each other as top-level modules (``import wire``); the grader imports ``autograder.sandboxed.wire``.
"""
