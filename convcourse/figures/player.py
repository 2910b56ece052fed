"""Show a matplotlib animation as an HTML player that needs no network.

``FuncAnimation.to_jshtml()`` embeds every frame, but links the icons of its buttons from a
CDN. The book's theme already ships Font Awesome, which draws those same icon names, so the
player only has to drop the link to work from disk.
"""

from __future__ import annotations

import re

from matplotlib.animation import Animation

_REMOTE_ICONS = re.compile(r"<link[^>]*font-awesome[^>]*>\s*")


def offline_jshtml(animation: Animation) -> str:
    """The animation's self-contained HTML player, with no reference to the network."""
    html = _REMOTE_ICONS.sub("", animation.to_jshtml())
    if "://" in html:
        raise RuntimeError("matplotlib's player links a remote resource: update offline_jshtml")
    return html


class Player:
    """An animation shown as its offline player: end a notebook cell with it to display it."""

    def __init__(self, animation: Animation):
        self.html = offline_jshtml(animation)

    def _repr_html_(self) -> str:
        return self.html
