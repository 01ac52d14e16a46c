"""The tabs and the inputs: each tab offers the layers that fit its task,
and the widget opens on a tab its layers fit.

The pickers follow the tab (`LayerPickers.for_task`) and the "first axis
is" control (`LayerPickers.refilter`); the control is shown while there
is an image with an axis in front of (rows, cols), so that a time-lapse
can be said to be a volume (and the other way round) on any tab.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .axes import DEPTH, TIME, describe, first_axis_kind, first_axis_label
from .layout import TABS

if TYPE_CHECKING:
    from .widget import MatchWidget

TRACK_TAB = TABS.index("Track")


def connect(widget: MatchWidget) -> None:
    """Wire the tabs, the template, the first axis and the viewer's
    layers to the pickers and to what follows the template."""
    widget.tabs.currentChanged.connect(lambda index: on_tab(widget, index))
    widget.template_layer.changed.connect(lambda *_: follow_template(widget))
    widget.first_axis.changed.connect(lambda *_: on_first_axis(widget))
    events = widget._viewer.layers.events
    for event in (events.inserted, events.removed):
        event.connect(lambda *_: on_layers(widget))
    on_layers(widget)


def on_tab(widget: MatchWidget, index: int) -> None:
    """Offer what tab `index` needs, keeping a choice that still fits."""
    widget._pickers.for_task(TABS[index])
    follow_template(widget)


def on_first_axis(widget: MatchWidget) -> None:
    """The first axis was said otherwise: other images may fit."""
    widget._pickers.refilter()
    follow_template(widget)


def on_layers(widget: MatchWidget) -> None:
    """Layers came or went: until the user chooses a layer, a Match tab
    turns to Track when every image is a time-lapse (the time-lapse
    sample; two series can still be matched frame by frame on Match)."""
    if widget._life.closed:
        return
    pickers = widget._pickers
    if (
        pickers.automatic
        and widget.tabs.currentIndex() == 0
        and pickers.fitting(track=True)
        and not pickers.has_still_images()
    ):
        try:
            widget.tabs.setCurrentIndex(TRACK_TAB)
        except RuntimeError:  # its Qt widgets are deleted
            return
    follow_template(widget)


def follow_template(widget: MatchWidget) -> None:
    """Show the first-axis control while an image has one; take the
    radii a layer's metadata suggests (the samples carry them)."""
    layer = widget.template_layer.value
    kind = widget.first_axis_kind()
    label = first_axis_label(widget._viewer, layer) if kind else ""
    settings = widget.settings
    settings.show_axis(kind, describe(kind, label))
    settings.first_axis.visible = (
        kind is not None or widget._pickers.has_stacks()
    )
    # Track asks for time: only an axis said to be depth is refused.
    tracked = first_axis_kind(
        widget._viewer, layer, widget.first_axis.value, unlabelled=TIME
    )
    widget.tracking.follow_template(layer, tracked != DEPTH)
    settings.follow_template(layer, kind)
