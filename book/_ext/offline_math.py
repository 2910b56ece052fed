"""Typeset the book's math with no network: MathJax 3 from the build, SVG output.

``sphinx-mathjax-offline`` copies MathJax 3 into ``_static/mathjax`` but selects the CHTML
output, whose web fonts a browser refuses to load across ``file://`` pages. SVG output draws
glyphs as paths and needs no font, so a book opened from disk typesets like a served one.
"""


def use_svg_output(app, config):
    config.mathjax_path = "mathjax/tex-svg.js"


def setup(app):
    app.setup_extension("sphinx-mathjax-offline")
    # After every extension's setup (which overrides conf values), before any page is written.
    app.connect("config-inited", use_svg_output, priority=900)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
