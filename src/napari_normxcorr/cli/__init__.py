"""The command line: match points, register two images, or track points
through a time series, without a viewer.

napari-normxcorr match TEMPLATE IMAGE POINTS.csv -o matched.csv
napari-normxcorr register TEMPLATE IMAGE POINTS.csv -o transform.json
napari-normxcorr track STACK POINTS.csv -o tracks.csv
"""

from ._commands import main

__all__ = ["main"]
