"""What the widget owns beyond its own dock: the results dock, the plots
dock and its keyboard shortcuts, all gone when the widget is closed.

napari's close button takes the dock out of the window and deletes the
dock (not our widget, which it only un-parents): the dock's ``destroyed``
is the widget's end. A widget never docked ends with its own Qt widget.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import napari
    from qtpy.QtWidgets import QDockWidget, QWidget

RESULTS_DOCK = "NCC match results"


class Lifecycle:
    """Ties the results dock and the shortcuts to the widget's life.

    Parameters
    ----------
    viewer : napari.Viewer
        The viewer whose window holds the docks and the key bindings.
    native : QWidget
        The widget's Qt widget (what napari docks).
    on_closed : callable
        Called once when the widget is closed (or its viewer).
    """

    def __init__(
        self,
        viewer: napari.Viewer,
        native: QWidget,
        on_closed: Callable[[], None],
    ):
        self._viewer = viewer
        self._native = native
        self._on_closed = on_closed
        self._keys: list[str] = []
        self._results: QDockWidget | None = None
        # Other docks the widget added (the plots), by name.
        self._docks: dict[str, QDockWidget] = {}
        self._dock: QDockWidget | None = None
        self.closed = False
        native.destroyed.connect(self.close)

    def watch_dock(self) -> None:
        """Once docked: closing the dock closes the widget."""
        from qtpy.QtWidgets import QDockWidget

        parent = self._native.parent()
        while parent is not None and not isinstance(parent, QDockWidget):
            parent = parent.parent()
        if parent is not None and parent is not self._dock:
            self._dock = parent
            parent.destroyed.connect(self.close)

    def docked(self, areas: list[Any]) -> None:
        """Once docked: watch the dock, and widen the tabs' scroll areas
        to napari's style sheet."""
        from .layout import fit_width

        try:
            self.watch_dock()
            for area in areas:
                fit_width(area)
        except RuntimeError:  # its Qt widgets are deleted
            pass

    def bind(self, key: str, action: Callable[[], Any]) -> None:
        """Run `action` on `key` (napari's key names) in the viewer."""
        self._viewer.bind_key(key, lambda viewer: action(), overwrite=True)
        self._keys.append(key)

    def add_results(self, table: QWidget) -> QDockWidget:
        """Dock `table` at the bottom; a results dock left by an earlier
        widget goes first, so that there is one."""
        window = self._viewer.window
        stale = window.dock_widgets.get(RESULTS_DOCK)
        if stale is not None:
            window.remove_dock_widget(stale)
        self._results = window.add_dock_widget(
            table, name=RESULTS_DOCK, area="bottom"
        )
        return self._results

    def add_dock(self, widget: QWidget, name: str) -> QDockWidget:
        """Dock `widget` at the bottom as `name`, once; it goes with the
        widget."""
        if name not in self._docks:
            self._docks[name] = self._viewer.window.add_dock_widget(
                widget, name=name, area="bottom"
            )
        return self._docks[name]

    def close(self, *_: Any) -> None:
        """The widget is gone: its results dock and shortcuts go too."""
        if self.closed:
            return
        self.closed = True
        for key in self._keys:
            try:
                self._viewer.bind_key(key, None)
            except (KeyError, RuntimeError):
                pass
        for dock in [self._results, *self._docks.values()]:
            if dock is None:
                continue
            try:
                self._viewer.window.remove_dock_widget(dock)
            except (AttributeError, LookupError, RuntimeError):
                pass  # the window (or the dock) is gone already
        self._results = None
        self._docks.clear()
        self._on_closed()
