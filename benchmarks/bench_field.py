"""match_field against OpenPIV's windef on particle images of known flows.

OpenPIV (GPL) is a benchmark-only peer: this script imports it, the
package never does. Both run on the same 512 x 512 pairs
(tests/ground_truth.py: particles 0.05 per px, e^-2 diameter 2.5 px, 2 %
noise): windef with windows 64-32-32 and overlaps 32-16-16 (3 passes,
symmetric window deformation, vectors 16 px apart); match_field at its
defaults with spacing 16 (a 65-px pass on a 32-px grid, then two 33-px
passes with window deformation).

Each is judged by its own convention: match_field's vector is where the
template image's grid point went; windef's is centred between the frames
(the particle at p - d/2 in the first frame is at p + d/2 in the second).
Interior vectors are those at least 32 px from the edges (and, for the
blob, whose windows miss the no-particle disc). Per flow it prints RMS
error, the largest error of an ok vector, the share of interior vectors
given (ok or replaced) and the time of each, and the ratio of the times
(ours over windef's, measured side by side, median of 5).

Run: python benchmarks/bench_field.py [--repeats N]
"""

import argparse
import contextlib
import io
import warnings

import numpy as np

import _timing
import ground_truth as gt
from napari_normxcorr import Status, match_field

SHAPE = (512, 512)
SPACING = 16
EDGE = 32
# A disc without particles covering 5 % of the image, off centre.
BLOB_RADIUS = float(np.sqrt(0.05 * SHAPE[0] * SHAPE[1] / np.pi))
BLOB = (300.0, 200.0, BLOB_RADIUS)


def pairs():
    """(name, GroundTruth, disc or None) of each flow."""
    for flow in ("rotation", "shear", "lamb-oseen"):
        yield flow, gt.particle_pair(flow, shape=SHAPE), None
    yield (
        "rotation + 5 % blob",
        gt.particle_pair("rotation", shape=SHAPE, empty_disc=BLOB),
        BLOB,
    )


def windef(a, b):
    """OpenPIV's windef, 3 passes 64-32-32: (points (n, 2) row, col;
    displacements (n, 2)) in image axes, before its y-up conversion."""
    from openpiv import windef as wd

    settings = wd.PIVSettings()
    settings.windowsizes = (64, 32, 32)
    settings.overlap = (32, 16, 16)
    settings.num_iterations = 3
    settings.show_plot = settings.save_plot = False
    x, y, u, v, s2n = wd.first_pass(a, b, settings)
    mask = np.zeros_like(u, dtype=bool)
    u, v = np.ma.array(u, mask=mask), np.ma.array(v, mask=mask)
    flags = wd.validation.typical_validation(u, v, s2n, settings)
    u, v = wd.filters.replace_outliers(u, v, flags)
    for i in range(1, settings.num_iterations):
        x, y, u, v, _, _ = wd.multipass_img_deform(
            a, b, i, x, y, u, v, settings
        )
    points = np.column_stack([y.ravel(), x.ravel()]).astype(float)
    moved = np.column_stack([np.asarray(v).ravel(), np.asarray(u).ravel()])
    return points, moved


def ours(a, b):
    result = match_field(a, b, SPACING, template_radius=16)
    d = result.points.shape[-1]
    return result, result.points.reshape(-1, d), result.offset.reshape(-1, d)


def midpoint_truth(flow, points):
    """The displacement d with p - d/2 moving to p + d/2."""
    start = points.copy()
    for _ in range(50):
        start = points - flow.displacement(start) / 2
    return flow.displacement(start)


def interior(points, disc, radius=16):
    inside = np.all(
        (points >= EDGE) & (points <= np.asarray(SHAPE) - 1 - EDGE), axis=1
    )
    if disc is not None:
        row, col, r = disc
        far = np.hypot(points[:, 0] - row, points[:, 1] - col)
        inside &= far > r + radius * np.sqrt(2)
    return inside


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    print(_timing.machine_line())
    try:
        import openpiv
    except ImportError:
        print("OpenPIV is not installed (pip install openpiv): no reference.")
        return
    print(f"OpenPIV {openpiv.__version__}; {SHAPE[0]} x {SHAPE[1]} pairs\n")
    header = (
        f"{'flow':22s} {'RMS ours':>9s} {'windef':>8s} {'max ok':>7s} "
        f"{'given':>6s} {'ours s':>7s} {'windef s':>8s} {'ratio':>6s}"
    )
    print(header)
    for name, pair, disc in pairs():
        a, b = pair.template_image, pair.image
        flow = pair.info["flow"]
        p_w, d_w = _quiet_windef(a, b)
        result, p_o, d_o = ours(a, b)
        e_w = np.linalg.norm(d_w - midpoint_truth(flow, p_w), axis=1)
        e_o = np.linalg.norm(d_o - flow.displacement(p_o), axis=1)
        in_w, in_o = interior(p_w, disc), interior(p_o, disc)
        status = result.status.reshape(-1)
        given = (status == Status.OK) | (status == Status.REPLACED)
        ok = status == Status.OK
        rms_o = np.sqrt(np.mean(e_o[in_o & given] ** 2))
        rms_w = np.sqrt(np.mean(e_w[in_w] ** 2))
        worst = float(np.max(e_o[ok], initial=0.0))
        timed = _timing.paired_ratios(
            {"ours": lambda: ours(a, b)},
            lambda: _quiet_windef(a, b),
            repeats=args.repeats,
        )
        t_o, t_w, ratios = timed["ours"]
        print(
            f"{name:22s} {rms_o:9.4f} {rms_w:8.4f} {worst:7.3f} "
            f"{given[in_o].mean():6.1%} {t_o:7.3f} {t_w:8.3f} "
            f"{np.median(ratios):6.2f}"
        )


def _quiet_windef(a, b):
    """windef without its warnings and prints."""
    with (
        warnings.catch_warnings(),
        contextlib.redirect_stdout(io.StringIO()),
    ):
        warnings.simplefilter("ignore")
        return windef(a, b)


if __name__ == "__main__":
    main()
