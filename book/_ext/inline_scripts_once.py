"""Backport of sphinx-doc/sphinx#13402 (Sphinx 8.2) to the Sphinx 7 that Jupyter Book 1 pins.

An inline script added with ``app.add_js_file(None, body=...)`` after the HTML builder starts
(sphinx-thebe and sphinx-togglebutton do this) was registered twice: once as ``None`` and once,
when the builder re-reads the registry, as ``''``. Pages then declared ``const THEBE_JS_URL``
twice, a SyntaxError in every browser. Upstream's fix passes ``''`` for ``None`` both times.
"""

import sphinx
from sphinx.builders.html import StandaloneHTMLBuilder


def setup(app):
    if sphinx.version_info < (8, 2):
        register = StandaloneHTMLBuilder.add_js_file
        if not getattr(register, "backported", False):

            def add_js_file(self, filename, **kwargs):
                register(self, filename or "", **kwargs)

            add_js_file.backported = True
            StandaloneHTMLBuilder.add_js_file = add_js_file
    return {"parallel_read_safe": True, "parallel_write_safe": True}
