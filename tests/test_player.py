"""The animation player carries every frame and nothing from the network."""

import re

import matplotlib.pyplot as plt
from matplotlib.animation import FuncAnimation

from convcourse.figures.player import Player


def test_player_embeds_every_frame_and_links_nothing_remote():
    fig, ax = plt.subplots(figsize=(1, 1), dpi=20)
    anim = FuncAnimation(fig, lambda i: ax.set_title(str(i)), frames=3)
    plt.close(fig)
    raw = anim.to_jshtml()
    assert "://" in raw  # what matplotlib emits links its button icons from a CDN
    html = Player(anim)._repr_html_()
    assert "://" not in html
    assert len(re.findall(r"frames\[\d+\] = ", html)) == 3
    assert html.count('class="fa fa-') == raw.count('class="fa fa-') > 0  # buttons kept
