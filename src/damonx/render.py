"""Images of reports: heatmaps and time series as SVG or PNG.

SVG is written by hand and needs nothing beyond the standard library.  PNG
needs matplotlib (``pip install 'damonx[plot]'``).
"""

import math
import os
from xml.sax.saxutils import escape

import numpy as np

from damonx.errors import DamonxError
from damonx.units import format_size as format_sz


def _image_kind(path):
    ext = os.path.splitext(os.fspath(path))[1].lower()
    if ext not in (".svg", ".png"):
        raise DamonxError(f"cannot tell the image format of {os.fspath(path)!r}: "
                          "name it .svg or .png")
    return ext[1:]


def _pyplot():
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as err:
        raise DamonxError("PNG output needs matplotlib: pip install 'damonx[plot]' "
                          "(or write .svg, which needs nothing)") from err
    return plt


def _nice_ticks(lo, hi, n=5):
    if hi <= lo:
        return [lo]
    raw = (hi - lo) / n
    mag = 10 ** math.floor(math.log10(raw))
    step = min((m * mag for m in (1, 2, 5, 10) if m * mag >= raw), default=raw)
    first = math.ceil(lo / step) * step
    ticks = []
    v = first
    while v <= hi + step * 1e-9:
        ticks.append(v)
        v += step
    return ticks


def _byte_step(span, n=6):
    """A power-of-two tick step for a byte axis of the given span."""
    return float(2 ** max(0, math.ceil(math.log2(max(span, 1) / n))))


def _short_sz(v):
    """Byte count for a tick label: 256 MiB, 1.5 GiB."""
    for unit, shift in (("TiB", 40), ("GiB", 30), ("MiB", 20), ("KiB", 10)):
        if v >= 1 << shift:
            return f"{v / (1 << shift):.4g} {unit}"
    return f"{v:.0f} B"


def _addr_label(offset):
    return "+" + _short_sz(offset) if offset else "0"


def _color(frac):
    """Dark blue to yellow (viridis-like) for frac in [0, 1]."""
    stops = [(0.0, (68, 1, 84)), (0.25, (59, 82, 139)), (0.5, (33, 145, 140)),
             (0.75, (94, 201, 98)), (1.0, (253, 231, 37))]
    frac = min(max(frac, 0.0), 1.0)
    for (f0, c0), (f1, c1) in zip(stops, stops[1:]):
        if frac <= f1:
            k = (frac - f0) / (f1 - f0)
            return tuple(int(round(a + (b - a) * k)) for a, b in zip(c0, c1))
    return stops[-1][1]


def _unit_label(unit):
    return "access rate (%)" if unit == "percent" else "nr_accesses per aggregation"


def heatmap_svg(hm, title=None):
    """SVG text of one heatmap from :func:`damonx.reports.heatmap`.

    x: time since the record start, y: address offset from the range start.
    """
    vals = np.asarray(hm["values"], dtype=float)
    nt, na = vals.shape
    a0, a1 = hm["address_range"]
    t0, t1 = hm["time_range_ns"]
    vmax = 100.0 if hm["unit"] == "percent" else (np.nanmax(vals) if np.isfinite(vals).any() else 1.0)
    vmax = vmax or 1.0
    left, top, pw, ph = 90, 40, 600, 400
    W, H = left + pw + 110, top + ph + 60
    cw, ch = pw / nt, ph / na
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" '
           f'viewBox="0 0 {W} {H}" font-family="sans-serif" font-size="11">',
           f'<rect width="{W}" height="{H}" fill="white"/>',
           f'<text x="{left + pw / 2}" y="20" text-anchor="middle" font-size="14">'
           f'{escape(title or "access heatmap, target %s" % hm["target_id"])}</text>',
           f'<rect x="{left}" y="{top}" width="{pw}" height="{ph}" fill="#dddddd"/>']
    for i in range(nt):
        for j in range(na):
            v = vals[i, j]
            if not np.isfinite(v):
                continue
            r, g, b = _color(v / vmax)
            # low addresses at the bottom
            y = top + ph - (j + 1) * ch
            out.append(f'<rect x="{left + i * cw:.2f}" y="{y:.2f}" width="{cw + 0.05:.2f}" '
                       f'height="{ch + 0.05:.2f}" fill="#{r:02x}{g:02x}{b:02x}"/>')
    out.append(f'<rect x="{left}" y="{top}" width="{pw}" height="{ph}" fill="none" stroke="black"/>')
    for tv in _nice_ticks(0, (t1 - t0) / 1e9):
        x = left + (tv * 1e9) / (t1 - t0) * pw
        out.append(f'<line x1="{x:.1f}" y1="{top + ph}" x2="{x:.1f}" y2="{top + ph + 5}" stroke="black"/>')
        out.append(f'<text x="{x:.1f}" y="{top + ph + 18}" text-anchor="middle">{tv + t0 / 1e9:g} s</text>')
    for av in _nice_ticks(0, a1 - a0):
        y = top + ph - av / (a1 - a0) * ph
        out.append(f'<line x1="{left - 5}" y1="{y:.1f}" x2="{left}" y2="{y:.1f}" stroke="black"/>')
        out.append(f'<text x="{left - 8}" y="{y + 4:.1f}" text-anchor="end">{escape(_addr_label(av))}</text>')
    out.append(f'<text x="{left + pw / 2}" y="{H - 12}" text-anchor="middle">time (s)</text>')
    out.append(f'<text x="14" y="{top + ph / 2}" text-anchor="middle" '
               f'transform="rotate(-90 14 {top + ph / 2})">address - {a0:#x}</text>')
    # colour bar
    bx, bw = left + pw + 20, 16
    steps = 50
    for k in range(steps):
        r, g, b = _color((k + 0.5) / steps)
        y = top + ph - (k + 1) * ph / steps
        out.append(f'<rect x="{bx}" y="{y:.2f}" width="{bw}" height="{ph / steps + 0.05:.2f}" '
                   f'fill="#{r:02x}{g:02x}{b:02x}"/>')
    out.append(f'<rect x="{bx}" y="{top}" width="{bw}" height="{ph}" fill="none" stroke="black"/>')
    for v in _nice_ticks(0, vmax, 4):
        y = top + ph - v / vmax * ph
        out.append(f'<text x="{bx + bw + 4}" y="{y + 4:.1f}">{v:g}</text>')
    out.append(f'<text x="{bx}" y="{top + ph + 18}">{escape(_unit_label(hm["unit"]))}</text>')
    out.append("</svg>")
    return "\n".join(out) + "\n"


def series_svg(time_ns, values, ylabel="working set size", title=None):
    """SVG text of a line plot of byte sizes over time."""
    time_ns = np.asarray(time_ns, dtype=float)
    values = np.asarray(values, dtype=float)
    if not len(values):
        raise DamonxError("nothing to plot: no snapshots")
    left, top, pw, ph = 90, 40, 600, 300
    W, H = left + pw + 30, top + ph + 60
    tmax = float(time_ns.max()) if time_ns.max() > 0 else 1.0
    vmax = float(values.max()) if values.max() > 0 else 1.0
    pts = " ".join(f"{left + t / tmax * pw:.1f},{top + ph - v / vmax * ph:.1f}"
                   for t, v in zip(time_ns, values))
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" '
           f'viewBox="0 0 {W} {H}" font-family="sans-serif" font-size="11">',
           f'<rect width="{W}" height="{H}" fill="white"/>',
           f'<text x="{left + pw / 2}" y="20" text-anchor="middle" font-size="14">'
           f'{escape(title or ylabel + " over time")}</text>',
           f'<rect x="{left}" y="{top}" width="{pw}" height="{ph}" fill="none" stroke="black"/>',
           f'<polyline points="{pts}" fill="none" stroke="#1f77b4" stroke-width="1.5"/>']
    for tv in _nice_ticks(0, tmax / 1e9):
        x = left + tv * 1e9 / tmax * pw
        out.append(f'<line x1="{x:.1f}" y1="{top + ph}" x2="{x:.1f}" y2="{top + ph + 5}" stroke="black"/>')
        out.append(f'<text x="{x:.1f}" y="{top + ph + 18}" text-anchor="middle">{tv:g} s</text>')
    for v in _nice_ticks(0, vmax, 4):
        y = top + ph - v / vmax * ph
        out.append(f'<line x1="{left - 5}" y1="{y:.1f}" x2="{left}" y2="{y:.1f}" stroke="black"/>')
        out.append(f'<text x="{left - 8}" y="{y + 4:.1f}" text-anchor="end">{escape(format_sz(v))}</text>')
    out.append(f'<text x="{left + pw / 2}" y="{H - 12}" text-anchor="middle">time (s)</text>')
    out.append(f'<text x="14" y="{top + ph / 2}" text-anchor="middle" '
               f'transform="rotate(-90 14 {top + ph / 2})">{escape(ylabel)}</text>')
    out.append("</svg>")
    return "\n".join(out) + "\n"


def _write_text(path, text):
    try:
        with open(path, "w") as f:
            f.write(text)
    except OSError as err:
        raise DamonxError(f"cannot write {os.fspath(path)}: {err.strerror}") from None


def save_heatmap(hm, path, title=None):
    """Write a heatmap to ``path``; .svg or .png by the name."""
    kind = _image_kind(path)
    if kind == "svg":
        _write_text(path, heatmap_svg(hm, title))
        return
    plt = _pyplot()
    vals = np.asarray(hm["values"], dtype=float)
    a0, a1 = hm["address_range"]
    t0, t1 = hm["time_range_ns"]
    fig, ax = plt.subplots(figsize=(8, 5), dpi=100)
    vmax = 100.0 if hm["unit"] == "percent" else None
    im = ax.imshow(np.ma.masked_invalid(vals.T), origin="lower", aspect="auto",
                   extent=[t0 / 1e9, t1 / 1e9, 0, a1 - a0], vmin=0, vmax=vmax,
                   cmap="viridis", interpolation="nearest")
    ax.set_xlabel("time (s)")
    ax.set_ylabel(f"address - {a0:#x}")
    ax.yaxis.set_major_locator(plt.MultipleLocator(_byte_step(a1 - a0)))
    ax.yaxis.set_major_formatter(plt.FuncFormatter(lambda v, _: _addr_label(v)))
    ax.set_title(title or "access heatmap, target %s" % hm["target_id"])
    fig.colorbar(im, ax=ax, label=_unit_label(hm["unit"]))
    _save_fig(fig, plt, path)


def save_series(time_ns, values, path, ylabel="working set size", title=None):
    """Write a byte-size time series to ``path``; .svg or .png by the name."""
    kind = _image_kind(path)
    if kind == "svg":
        _write_text(path, series_svg(time_ns, values, ylabel, title))
        return
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(8, 4), dpi=100)
    ax.plot(np.asarray(time_ns, dtype=float) / 1e9, values)
    ax.set_xlabel("time (s)")
    ax.set_ylabel(ylabel)
    ax.yaxis.set_major_locator(plt.MultipleLocator(_byte_step(max(values, default=1))))
    ax.yaxis.set_major_formatter(plt.FuncFormatter(lambda v, _: _short_sz(v)))
    ax.set_title(title or ylabel + " over time")
    ax.set_ylim(bottom=0)
    _save_fig(fig, plt, path)


def _save_fig(fig, plt, path):
    try:
        fig.tight_layout()
        fig.savefig(os.fspath(path), format="png")
    except OSError as err:
        raise DamonxError(f"cannot write {os.fspath(path)}: {err.strerror}") from None
    finally:
        plt.close(fig)
