# IPython settings for the kernels that execute the book's pages (`make book` points IPYTHONDIR
# here). A page that shows an error shows PyTorch's message, not a traceback through .venv.
c = get_config()  # noqa: F821  (provided by IPython when it loads this file)
c.InteractiveShell.xmode = "Minimal"
c.HistoryManager.enabled = False  # write nothing into the source tree
