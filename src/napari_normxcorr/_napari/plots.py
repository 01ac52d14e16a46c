"""Plots in the viewer: the selected track's displacement and score against
time, and the last run's scores and uncertainties by status.

A matplotlib figure on Qt's canvas, redrawn when the matches, the tracks
or the selection change. matplotlib is imported here only, when the plots
are opened: the widget works without it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np

from ..matching._result import Status
from .legend import FAILED_COLOR, GROUPS, rgba

if TYPE_CHECKING:
    from magicgui.widgets import PushButton
    from matplotlib.axes import Axes

    from ..matching._result import MatchResult
    from ..tracking._tracks import TrackResult
    from .session import MatchSession
    from .track_session import TrackSession

PLOTS_DOCK = "NCC plots"
_BINS = 20
# Where the selected matches sit in the histograms.
_MARK = "#000000"


RGBA = tuple[float, float, float, float]


def status_groups(status: np.ndarray) -> list[tuple[str, RGBA, np.ndarray]]:
    """(name, colour, rows) per legend group present in `status`, in the
    legend's order; every status without a colour is "no match" (grey)."""
    names = np.array([str(s) for s in status])
    groups = []
    coloured = np.zeros(len(names), dtype=bool)
    for colour, members in GROUPS:
        rows = np.isin(names, [str(m) for m in members])
        coloured |= rows
        if rows.any():
            label = " / ".join(str(m) for m in members if str(m) in names)
            groups.append((label, rgba(colour), rows))
    if (~coloured).any():
        groups.append(("no match", FAILED_COLOR, ~coloured))
    return groups


def track_series(
    tracks: TrackResult, point: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Frames, displacement (T, D) in pixels from the point as given,
    and score, of the track of `point`."""
    start = np.asarray(tracks.points[point, 1:], dtype=float)
    position = tracks.position[point]
    displacement = position - start[-position.shape[1] :]
    return np.arange(len(position)), displacement, tracks.score[point]


def bin_edges(values: np.ndarray, score: bool) -> np.ndarray:
    """Histogram bins over the values' range (a score's up to 1), widened
    where they all agree."""
    low, high = float(values.min()), float(values.max())
    if score:
        high = 1.0
    # One value: a range around it, or numpy finds no bins.
    spread = max(high - low, 1e-3 * max(abs(high), 1.0))
    return np.linspace(high - spread, high, _BINS + 1)


class Plots:
    """The plots dock's figure, following the sessions.

    Parameters
    ----------
    session : MatchSession
        The last run's matches and their selection (histograms).
    tracks : TrackSession
        The tracks and the selected one (curves against time).

    Attributes
    ----------
    axes : dict of str to matplotlib Axes
        ``displacement`` and ``score`` (against the frame), ``scores`` and
        ``uncertainties`` (histograms).
    native : FigureCanvasQTAgg
        The Qt widget to dock.
    """

    def __init__(self, session: MatchSession, tracks: TrackSession):
        from matplotlib.backends.backend_qtagg import FigureCanvasQTAgg
        from matplotlib.figure import Figure

        self._session = session
        self._tracks = tracks
        self.figure = Figure(figsize=(6, 4), layout="constrained")
        self.native = FigureCanvasQTAgg(self.figure)
        # Docked small, matplotlib draws its labels over each other.
        self.native.setMinimumSize(480, 300)
        grid = self.figure.subplots(2, 2)
        self.axes: dict[str, Axes] = {
            "displacement": grid[0, 0],
            "score": grid[0, 1],
            "scores": grid[1, 0],
            "uncertainties": grid[1, 1],
        }
        self._signals = [
            session.changed,
            session.selected,
            tracks.changed,
            tracks.selected,
        ]
        for signal in self._signals:
            signal.connect(self.redraw)
        self.redraw()

    def close(self) -> None:
        """Stop following the sessions."""
        for signal in self._signals:
            signal.disconnect(self.redraw)

    def redraw(self, *_: Any) -> None:
        """Draw the figure again from the sessions."""
        self._draw_track()
        self._draw_histograms()
        self.native.draw_idle()

    def _draw_track(self) -> None:
        moved, score = self.axes["displacement"], self.axes["score"]
        moved.clear()
        score.clear()
        tracks, point = self._tracks.result, self._tracks.point
        moved.set(xlabel="frame", ylabel="displacement (px)")
        score.set(xlabel="frame", ylabel="score", ylim=(-0.05, 1.05))
        if tracks is None or point is None:
            moved.set_title("select a track", fontsize="small")
            return
        frames, displacement, scores = track_series(tracks, point)
        names = ("z", "row", "col")[-displacement.shape[1] :]
        for axis, name in enumerate(names):
            moved.plot(frames, displacement[:, axis], label=f"Δ {name}")
        moved.legend(fontsize="x-small")
        moved.set_title(f"track {point}", fontsize="small")
        ok = tracks.status[point] == Status.OK
        score.plot(frames, scores, color="0.5", label="score")
        score.plot(frames[ok], scores[ok], ".", color=rgba(GROUPS[0][0]))
        score.set_title(f"track {point}", fontsize="small")

    def _draw_histograms(self) -> None:
        result = self._session.result
        columns = {
            "scores": ("score", "score"),
            "uncertainties": ("uncertainty", "uncertainty (px)"),
        }
        for key, (column, label) in columns.items():
            axes = self.axes[key]
            axes.clear()
            axes.set(xlabel=label)
            if result is None or len(result) == 0:
                axes.set_title("run the matching", fontsize="small")
                continue
            self._histogram(axes, result, column)

    def _histogram(self, axes: Axes, result: MatchResult, column: str) -> None:
        """A stacked histogram of `column`, one colour per status group,
        and a line at each selected match."""
        values = np.asarray(getattr(result, column), dtype=float)
        finite = np.isfinite(values)
        groups = status_groups(result.status)
        data = [values[rows & finite] for _, _, rows in groups]
        if not finite.any():
            axes.set_title(f"no finite {column}", fontsize="small")
            return
        axes.hist(
            data,
            bins=bin_edges(values[finite], column == "score").tolist(),
            stacked=True,
            color=[colour for _, colour, _ in groups],
            label=[name for name, _, _ in groups],
        )
        axes.locator_params(axis="x", nbins=4)
        for row in self._session.selection:
            if row < len(values) and finite[row]:
                axes.axvline(values[row], color=_MARK, linestyle="--")
        hidden = int(np.count_nonzero(~finite))
        if hidden:
            axes.set_title(f"{hidden} not finite", fontsize="small")
        if column == "score":
            axes.legend(fontsize="xx-small")


class PlotsDock:
    """The **Show plots** button and the dock it opens (once) with
    ``add_dock(widget, name)``, which docks it for the widget's life."""

    def __init__(
        self,
        session: MatchSession,
        tracks: TrackSession,
        add_dock: Callable[[Any, str], object],
    ):
        from magicgui.widgets import PushButton

        self._session = session
        self._tracks = tracks
        self._add_dock = add_dock
        self.plots: Plots | None = None
        self.button: PushButton = PushButton(
            text="Show plots",
            tooltip="Dock plots: the selected track's displacement and "
            "score against time, the last run's scores and uncertainties",
        )
        self.button.changed.connect(lambda: self.show())

    def show(self) -> Plots | None:
        """The plots, docked on first use; None without matplotlib (a
        notification says how to get it)."""
        from napari.utils.notifications import show_warning

        if self.plots is None:
            try:
                self.plots = Plots(self._session, self._tracks)
            except ImportError:
                show_warning(
                    "The plots need matplotlib: pip install matplotlib"
                )
                return None
            self._add_dock(self.plots.native, PLOTS_DOCK)
        return self.plots

    def close(self) -> None:
        """The widget is gone: the plots stop following it."""
        if self.plots is not None:
            self.plots.close()
