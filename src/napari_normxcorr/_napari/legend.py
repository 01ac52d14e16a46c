"""The status colours (colour-blind safe: Okabe & Ito's palette) and
their legend.

Statuses that call for the same action share a colour: the three checks
against other evidence (matching back, the neighbours, the transform)
are one reddish purple; every "no match" is grey.
"""

from __future__ import annotations

from ..matching._result import Status

# Okabe & Ito (2008), "Color Universal Design": tell apart with any of
# the common colour vision deficiencies; white for the search border.
_GREEN, _YELLOW, _ORANGE = "#009E73", "#F0E442", "#E69F00"
_SKY, _BLUE, _VERMILLION = "#56B4E9", "#0072B2", "#D55E00"
_PURPLE, _WHITE, _GREY = "#CC79A7", "#FFFFFF", "#8C8C8C"
# (colour, statuses) in the legend's order.
GROUPS = (
    (_GREEN, (Status.OK,)),
    (_YELLOW, (Status.AMBIGUOUS,)),
    (_ORANGE, (Status.TWO_MOTIONS,)),
    (_SKY, (Status.EDGE_ONLY,)),
    (_BLUE, (Status.UNCERTAIN,)),
    (_WHITE, (Status.ON_BORDER,)),
    (_VERMILLION, (Status.LOW_SCORE,)),
    (
        _PURPLE,
        (Status.INCONSISTENT, Status.OUTLIER, Status.TRANSFORM_OUTLIER),
    ),
)
FAILED_HEX = _GREY


def rgba(hex_color: str) -> tuple[float, float, float, float]:
    """'#RRGGBB' as an RGBA tuple in [0, 1]."""
    value = hex_color.lstrip("#")
    red, green, blue = (int(value[i : i + 2], 16) / 255 for i in (0, 2, 4))
    return (red, green, blue, 1.0)


STATUS_COLORS = {
    status: rgba(color) for color, members in GROUPS for status in members
}
FAILED_COLOR = rgba(FAILED_HEX)


def legend_html() -> str:
    """The legend as rich text: a coloured dot and the status names."""
    entries = [
        (color, " / ".join(str(s) for s in members))
        for color, members in GROUPS
    ]
    entries.append((FAILED_HEX, "no match"))
    return " &nbsp; ".join(
        f'<span style="color:{color}">&#9679;</span>&nbsp;{name}'
        for color, name in entries
    )
