"""The built book: every chapter and parameter section is there, and shows computed values."""

from __future__ import annotations

import re

import pytest
import torch
from bs4 import BeautifulSoup
from conftest import toc_pages
from torch import nn

# every test here reads the one strict build of the book
pytestmark = pytest.mark.book

PAGES = toc_pages()


def soup(built_book, page: str) -> BeautifulSoup:
    return BeautifulSoup(built_book.page(page).read_text(encoding="utf-8"), "html.parser")


def outputs(page_soup: BeautifulSoup) -> str:
    """The text of every executed cell's output on a page, joined."""
    return "\n".join(o.get_text() for o in page_soup.select("div.cell_output"))


def test_the_build_is_strict_and_clean(built_book):
    assert "build succeeded" in built_book.log
    # Sphinx's own messages ("file:line: WARNING: ..." or "WARNING: ..."). Kernels write other
    # chatter to the same log ("[IPKernelApp] WARNING | ...", "ERROR:tornado.general:..." from
    # a shutdown race in ipykernel 7); a failed cell still surfaces as a Sphinx WARNING.
    found = re.search(r"(^|: )(WARNING|ERROR|CRITICAL): ", built_book.log, re.MULTILINE)
    assert not found, built_book.log[max(found.start() - 1500, 0):found.end() + 500]


@pytest.mark.parametrize("page", PAGES)
def test_every_page_is_built_with_a_title_and_no_placeholder(built_book, page):
    html = soup(built_book, page)
    title = html.find("h1")
    assert title is not None and title.get_text(strip=True), f"{page} has no title"
    assert "STUB" not in html.get_text(), f"{page} is still a placeholder"


@pytest.mark.parametrize(
    "parameter",
    ["in_channels", "out_channels", "kernel_size", "stride", "padding", "padding_mode",
     "dilation", "groups", "bias"],
)
def test_each_parameter_has_a_section(built_book, parameter):
    headings = [
        h.get_text(" ", strip=True)
        for page in PAGES
        if page.startswith("parameters/")
        for h in soup(built_book, page).find_all(["h1", "h2"])
    ]
    assert any(re.search(rf"\b{parameter}\b", h) for h in headings), (
        f"no parameter page has a heading about {parameter}: {headings}"
    )


@pytest.mark.parametrize(
    ("layer", "input_shape"),
    [
        (dict(in_channels=1, out_channels=16, kernel_size=3, stride=1, padding=1), (1, 1, 28, 28)),
        (dict(in_channels=3, out_channels=32, kernel_size=5, stride=2, padding=2), (1, 3, 64, 64)),
        (dict(in_channels=1, out_channels=8, kernel_size=3, stride=1, padding=1, dilation=2),
         (1, 1, 28, 28)),
    ],
    ids=["example-1", "example-2", "example-3"],
)
def test_worked_examples_print_the_shapes_pytorch_computes(built_book, layer, input_shape):
    expected = tuple(nn.Conv2d(**layer)(torch.zeros(input_shape)).shape)
    shown = outputs(soup(built_book, "worked-examples"))
    assert str(expected) in shown, f"the worked examples never print {expected}"


def test_the_third_example_is_corrected(built_book):
    page = soup(built_book, "worked-examples")
    # PyTorch's answer is printed, and the text says the article's 28x28 claim is wrong.
    assert "(1, 8, 26, 26)" in outputs(page)
    prose = " ".join(p.get_text(" ") for p in page.select("article p, article li"))
    assert re.search(r"28\s*[×x]\s*28", prose) and re.search(r"\b(wrong|false|incorrect)\b", prose)


def test_cells_raise_only_where_tagged_and_tagged_cells_do_raise(built_book):
    for page in PAGES:
        for cell in soup(built_book, page).select("div.cell"):
            tagged = "tag_raises-exception" in cell.get("class", [])
            raised = cell.select_one(".output.traceback") is not None
            problem = "is tagged raises-exception but shows no error" if tagged else (
                "raised without the raises-exception tag")
            assert tagged == raised, f"{page}: a cell {problem}:\n{cell.get_text()[:400]}"


def test_pages_with_math_load_the_local_mathjax(built_book):
    page = soup(built_book, "output-size")
    assert page.select(".math"), "the output-size page shows no math"
    sources = [s.get("src", "") for s in page.find_all("script")]
    mathjax = [s for s in sources if "mathjax" in s.lower()]
    assert mathjax and all(s.startswith("_static/mathjax/tex-svg.js") for s in mathjax), mathjax
    assert (built_book.html / "_static" / "mathjax" / "tex-svg.js").is_file()


def test_figures_are_images_inside_the_build(built_book):
    for page in PAGES:
        for img in soup(built_book, page).find_all("img"):
            src = img.get("src", "")
            if src.startswith("data:") or img.get("id", "").startswith("_anim_img"):
                continue  # inline, or an animation frame that the player's script fills in
            assert "://" not in src, f"{page} loads an image from the network: {src}"
            assert (built_book.page(page).parent / src).is_file(), f"{page}: missing image {src}"


def test_the_sliding_window_is_animated(built_book):
    page = built_book.page("sliding-window").read_text(encoding="utf-8")
    # The player embeds its frames as base64 images, driven by a small script.
    assert "_anim_img" in page and page.count("data:image/png;base64") >= 2
