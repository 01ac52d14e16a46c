"""How the widget is laid out: the inputs and the legend on top, one tab
per task below (Match, Track, Register, Dense field), each scrolling on
its own, and the expert settings folded."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from magicgui.widgets import Container
    from qtpy.QtWidgets import QLabel, QScrollArea, QTabWidget, QWidget
    from superqt import QCollapsible

TABS = ("Match", "Track", "Register", "Dense field")


def top_panel(widgets: list[Any]) -> Container:
    """The controls every task shares, above the tabs."""
    from magicgui.widgets import Container

    top = Container(widgets=widgets)
    top.margins = (4, 4, 4, 0)
    return top


def button_row(*buttons: Any) -> Container:
    """`buttons` side by side, without labels or margins."""
    from magicgui.widgets import Container

    row = Container(widgets=list(buttons), layout="horizontal", labels=False)
    row.margins = (0, 0, 0, 0)
    return row


def folded(title: str, section: Container) -> QCollapsible:
    """`section` in a collapsible box titled `title`, folded."""
    from superqt import QCollapsible

    box = QCollapsible(title)
    box.addWidget(section.native)
    box.collapse(animate=False)
    return box


def scrolled(inner: QWidget) -> QScrollArea:
    """`inner` in a scroll area that scrolls up and down only, at the
    top (its controls keep their height when the tab is taller)."""
    from qtpy.QtCore import Qt
    from qtpy.QtWidgets import QScrollArea, QVBoxLayout, QWidget

    holder = QWidget()
    column = QVBoxLayout(holder)
    column.setContentsMargins(0, 0, 0, 0)
    column.addWidget(inner)
    column.addStretch(1)
    area = QScrollArea()
    area.setWidgetResizable(True)
    area.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
    area.setWidget(holder)
    return area


def legend_label(html: str) -> QLabel:
    """The status legend: one wrapped line of coloured dots and names."""
    from qtpy.QtWidgets import QLabel

    label = QLabel(html)
    label.setWordWrap(True)
    label.setToolTip(
        "Status colours of the matches (colour-blind safe); the results "
        "table names each point's status"
    )
    return label


def tabbed(
    top: QWidget, legend: QLabel, pages: list[QWidget]
) -> tuple[QWidget, QTabWidget]:
    """The whole widget: `top` and `legend` above a tab per page."""
    from qtpy.QtWidgets import QTabWidget, QVBoxLayout, QWidget

    tabs = QTabWidget()
    tips = (
        "Match points from the template image to the target",
        "Follow the points through the frames of a time-lapse",
        "Fit a transform to the matches; overlay the images",
        "Points on a grid and the interpolated displacement field",
    )
    for title, tip, page in zip(TABS, tips, pages):
        index = tabs.addTab(page, title)
        tabs.setTabToolTip(index, tip)
    outer = QWidget()
    layout = QVBoxLayout(outer)
    layout.setContentsMargins(0, 0, 0, 0)
    layout.addWidget(top)
    layout.addWidget(legend)
    layout.addWidget(tabs, 1)
    return outer, tabs


def fit_width(area: QScrollArea) -> None:
    """The scroll area as wide as its contents: they scroll up and down,
    never sideways."""
    inner, scroll_bar = area.widget(), area.verticalScrollBar()
    if inner is None or scroll_bar is None:
        return
    bar = scroll_bar.sizeHint().width()
    frame = 2 * area.frameWidth()
    area.setMinimumWidth(inner.sizeHint().width() + bar + frame)
