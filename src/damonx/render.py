"""Images of reports: heatmaps and time series as SVG or PNG.

Both formats need nothing beyond numpy and the standard library.  A figure
is drawn once, on a canvas offering rectangles, lines, text and a raster
image: :class:`_SvgCanvas` turns that into SVG text, where a heatmap's cells
are one embedded PNG (scaled without smoothing) under vector axes and
labels; :class:`damonx._raster.Canvas` into pixels written as PNG, labelled
with a built-in bitmap font.
"""

import math
import os

import numpy as np

from damonx import _fileio
from damonx._raster import BLACK, WHITE, Canvas, encode_png
from damonx.errors import DamonxError
from damonx.units import format_size_short

NO_DATA = (221, 221, 221)  # cells no region covered
LINE_COLOR = (31, 119, 180)
_TITLE_SIZE = 2  # title text, times the size of labels


def _image_kind(path):
    ext = os.path.splitext(os.fspath(path))[1].lower()
    if ext not in (".svg", ".png"):
        raise DamonxError(
            f"cannot tell the image format of {os.fspath(path)!r}: name it .svg or .png"
        )
    return ext[1:]


# ---------------------------------------------------------------------------
# scales


def _nice_ticks(lo, hi, n=5):
    """About ``n`` round values (1, 2 or 5 times a power of ten apart) in [lo, hi]."""
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


def _byte_ticks(span, n=6):
    """Multiples of a power of two in [0, span], at most about ``n`` of them."""
    step = float(2 ** max(0, math.ceil(math.log2(max(span, 1) / n))))
    return [k * step for k in range(int(span // step) + 1)]


def _addr_label(offset):
    return "+" + format_size_short(offset) if offset else "0"


# dark blue to yellow, viridis-like
_COLOR_STOPS = np.array([0.0, 0.25, 0.5, 0.75, 1.0])
_COLORS = np.array([(68, 1, 84), (59, 82, 139), (33, 145, 140), (94, 201, 98), (253, 231, 37)])


def colormap(frac):
    """RGB (uint8, a trailing axis of 3) of ``frac`` (array, 0 to 1 from
    dark blue to yellow; clipped); NaN is light gray."""
    frac = np.asarray(frac, dtype=np.float64)
    clipped = np.clip(np.nan_to_num(frac), 0.0, 1.0)
    rgb = np.stack([np.interp(clipped, _COLOR_STOPS, _COLORS[:, k]) for k in range(3)], axis=-1)
    rgb = np.round(rgb).astype(np.uint8)
    rgb[np.isnan(frac)] = NO_DATA
    return rgb


def _unit_label(unit):
    return "access rate (%)" if unit == "percent" else "nr_accesses per aggregation"


# ---------------------------------------------------------------------------
# the SVG canvas (the raster one is damonx._raster.Canvas)


def _hex(color):
    r, g, b = color
    return f"#{r:02x}{g:02x}{b:02x}"


class _SvgCanvas:
    """The drawing calls of :class:`damonx._raster.Canvas`, as SVG elements."""

    def __init__(self, width, height, background=WHITE):
        self.width, self.height = width, height
        self.out = [
            f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
            f'viewBox="0 0 {width} {height}" font-family="sans-serif" font-size="11">',
            f'<rect width="{width}" height="{height}" fill="{_hex(background)}"/>',
        ]

    def rect(self, x, y, w, h, fill=None, stroke=None):
        paint = f'fill="{_hex(fill)}"' if fill is not None else 'fill="none"'
        if stroke is not None:
            paint += f' stroke="{_hex(stroke)}"'
        self.out.append(f'<rect x="{x:g}" y="{y:g}" width="{w:g}" height="{h:g}" {paint}/>')

    def line(self, x0, y0, x1, y1, color, width=1):
        self.out.append(
            f'<line x1="{x0:.1f}" y1="{y0:.1f}" x2="{x1:.1f}" y2="{y1:.1f}" '
            f'stroke="{_hex(color)}"' + (f' stroke-width="{width}"' if width != 1 else "") + "/>"
        )

    def polyline(self, points, color, width=1):
        pts = " ".join(f"{x:.1f},{y:.1f}" for x, y in points)
        self.out.append(
            f'<polyline points="{pts}" fill="none" stroke="{_hex(color)}" stroke-width="{width}"/>'
        )

    def text(self, x, y, text, color=BLACK, anchor="start", scale=1, vertical=False):
        attrs = f'x="{x:.1f}" y="{y:.1f}"'
        if anchor != "start":
            attrs += f' text-anchor="{anchor}"'
        if scale != 1:
            attrs += ' font-size="14"'
        if tuple(color) != BLACK:
            attrs += f' fill="{_hex(color)}"'
        if vertical:
            attrs += f' transform="rotate(-90 {x:.1f} {y:.1f})"'
        from xml.sax.saxutils import escape  # imports urllib: only for SVG

        self.out.append(f"<text {attrs}>{escape(text)}</text>")

    def image(self, x, y, w, h, rgb):
        import base64
        from xml.sax.saxutils import quoteattr

        data = "data:image/png;base64," + base64.b64encode(encode_png(rgb)).decode()
        self.out.append(
            f'<image x="{x:g}" y="{y:g}" width="{w:g}" height="{h:g}" '
            'preserveAspectRatio="none" image-rendering="optimizeSpeed" '
            f'style="image-rendering:pixelated" href={quoteattr(data)}/>'
        )

    def svg(self):
        return "\n".join(self.out + ["</svg>"]) + "\n"


# ---------------------------------------------------------------------------
# figures

_LEFT, _TOP = 90, 40  # the plot area's top left corner
_HEATMAP_SIZE = (800, 500)
_SERIES_SIZE = (720, 400)
#: (left, top, width, height) of the cells in a heatmap image, in pixels
HEATMAP_CELLS_AREA = (_LEFT, _TOP, _HEATMAP_SIZE[0] - _LEFT - 110, _HEATMAP_SIZE[1] - _TOP - 60)


def _x_time_axis(c, x, y, w, t0_ns, t1_ns, offset_ns=0):
    """Ticks and labels (seconds) under a plot area spanning [t0, t1)."""
    span = t1_ns - t0_ns
    for tv in _nice_ticks(0, span / 1e9):
        tx = x + tv * 1e9 / span * w
        c.line(tx, y, tx, y + 5, BLACK)
        c.text(tx, y + 18, f"{tv + offset_ns / 1e9:g} s", anchor="middle")
    c.text(x + w / 2, c.height - 12, "time (s)", anchor="middle")


def _y_ticks(c, x, y, h, ticks, vmax, label):
    """Ticks on the left edge of a plot area from value 0 (bottom) to vmax."""
    for v in ticks:
        ty = y + h - v / vmax * h
        c.line(x - 5, ty, x, ty, BLACK)
        c.text(x - 8, ty + 4, label(v), anchor="end")


def _draw_heatmap(c, hm, title):
    vals = np.asarray(hm["values"], dtype=float)
    a0, a1 = hm["address_range"]
    t0, t1 = hm["time_range_ns"]
    if hm["unit"] == "percent":
        vmax = 100.0
    else:
        vmax = float(np.nanmax(vals)) if np.isfinite(vals).any() else 1.0
    vmax = vmax or 1.0
    _, _, pw, ph = HEATMAP_CELLS_AREA
    c.text(
        _LEFT + pw / 2,
        20,
        title or f"access heatmap, target {hm['target_id']}",
        anchor="middle",
        scale=_TITLE_SIZE,
    )
    # one pixel per cell, low addresses at the bottom
    c.image(_LEFT, _TOP, pw, ph, colormap(vals.T[::-1] / vmax))
    c.rect(_LEFT, _TOP, pw, ph, stroke=BLACK)
    _x_time_axis(c, _LEFT, _TOP + ph, pw, t0, t1, offset_ns=t0)
    _y_ticks(c, _LEFT, _TOP, ph, _byte_ticks(a1 - a0), a1 - a0, _addr_label)
    c.text(14, _TOP + ph / 2, f"address - {a0:#x}", anchor="middle", vertical=True)
    # colour bar
    bx, bw = _LEFT + pw + 20, 16
    c.image(bx, _TOP, bw, ph, colormap(np.linspace(1, 0, 256))[:, None, :])
    c.rect(bx, _TOP, bw, ph, stroke=BLACK)
    for v in _nice_ticks(0, vmax, 4):
        c.text(bx + bw + 4, _TOP + ph - v / vmax * ph + 4, f"{v:g}")
    c.text(c.width - 8, _TOP + ph / 2, _unit_label(hm["unit"]), anchor="middle", vertical=True)


def _draw_series(c, time_ns, values, ylabel, title, unit):
    time_ns = np.asarray(time_ns, dtype=float)
    values = np.asarray(values, dtype=float)
    pw, ph = c.width - _LEFT - 30, c.height - _TOP - 60
    tmax = float(time_ns.max()) if time_ns.max() > 0 else 1.0
    vmax = float(values.max()) * 1.05 if values.max() > 0 else 1.0  # room above the line
    c.text(_LEFT + pw / 2, 20, title or ylabel + " over time", anchor="middle", scale=_TITLE_SIZE)
    c.rect(_LEFT, _TOP, pw, ph, stroke=BLACK)
    c.polyline(
        [(_LEFT + t / tmax * pw, _TOP + ph - v / vmax * ph) for t, v in zip(time_ns, values)],
        LINE_COLOR,
        2,
    )
    _x_time_axis(c, _LEFT, _TOP + ph, pw, 0, tmax)
    if unit == "bytes":
        ticks = _byte_ticks(vmax, 4)
        label = format_size_short
    else:
        ticks = _nice_ticks(0, vmax, 4)

        def label(v):
            return f"{v:g}"

    _y_ticks(c, _LEFT, _TOP, ph, ticks, vmax, label)
    c.text(14, _TOP + ph / 2, ylabel, anchor="middle", vertical=True)


def heatmap_svg(hm, title=None):
    """SVG text of one heatmap from :func:`damonx.reports.heatmap`.

    x: time since the record start, y: address offset from the range start.
    """
    c = _SvgCanvas(*_HEATMAP_SIZE)
    _draw_heatmap(c, hm, title)
    return c.svg()


def heatmap_png(hm, title=None):
    """PNG bytes of one heatmap (see :func:`heatmap_svg`)."""
    c = Canvas(*_HEATMAP_SIZE)
    _draw_heatmap(c, hm, title)
    return c.png()


def _check_series(values):
    if not len(values):
        raise DamonxError("nothing to plot: no snapshots")


def series_svg(time_ns, values, ylabel="working set size", title=None, unit="bytes"):
    """SVG text of a line plot over time of sizes (``unit`` "bytes") or of
    counts (any other ``unit``)."""
    _check_series(values)
    c = _SvgCanvas(*_SERIES_SIZE)
    _draw_series(c, time_ns, values, ylabel, title, unit)
    return c.svg()


def series_png(time_ns, values, ylabel="working set size", title=None, unit="bytes"):
    """PNG bytes of a line plot (see :func:`series_svg`)."""
    _check_series(values)
    c = Canvas(*_SERIES_SIZE)
    _draw_series(c, time_ns, values, ylabel, title, unit)
    return c.png()


def save_heatmap(hm, path, title=None):
    """Write a heatmap to ``path``; .svg or .png by the name."""
    if _image_kind(path) == "svg":
        data = heatmap_svg(hm, title).encode()
    else:
        data = heatmap_png(hm, title)
    _fileio.atomic_write(path, data)


def save_series(time_ns, values, path, ylabel="working set size", title=None, unit="bytes"):
    """Write a time series to ``path``; .svg or .png by the name."""
    if _image_kind(path) == "svg":
        data = series_svg(time_ns, values, ylabel, title, unit).encode()
    else:
        data = series_png(time_ns, values, ylabel, title, unit)
    _fileio.atomic_write(path, data)
