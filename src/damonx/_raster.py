"""A small raster canvas and a PNG encoder, so that damonx draws images with
numpy and the standard library alone.

The canvas offers what the report figures need: filled and outlined
rectangles, lines, text in a built-in 5x7 bitmap font (printable ASCII),
and pasting a raster scaled to a rectangle (nearest neighbour).
Coordinates are pixels from the top left; text is placed by its baseline,
like SVG's.
"""

import struct
import zlib

import numpy as np

BLACK = (0, 0, 0)
WHITE = (255, 255, 255)
#: zlib's level for PNG: a report's image at 6 is a few percent larger
#: than at 9, and made three times as fast
_PNG_LEVEL = 6


def encode_png(rgb):
    """PNG bytes of an RGB image: a (height, width, 3) array of uint8.

    8-bit truecolour, no interlace, filter type 0 on every row.
    """
    rgb = np.ascontiguousarray(rgb, dtype=np.uint8)
    if rgb.ndim != 3 or rgb.shape[2] != 3 or not rgb.shape[0] or not rgb.shape[1]:
        raise ValueError(f"an RGB image is (height, width, 3), not {rgb.shape}")
    height, width, _ = rgb.shape
    rows = np.zeros((height, 1 + 3 * width), dtype=np.uint8)  # a 0 filter byte per row
    rows[:, 1:] = rgb.reshape(height, 3 * width)

    def chunk(kind, data):
        crc = zlib.crc32(kind + data)
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"".join(
        [
            b"\x89PNG\r\n\x1a\n",
            chunk(b"IHDR", ihdr),
            chunk(b"IDAT", zlib.compress(rows.tobytes(), _PNG_LEVEL)),
            chunk(b"IEND", b""),
        ]
    )


# The glyphs of ASCII 32 to 126, nine characters each, one per pixel row from
# the top; a row is a base-32 digit whose bits 4 to 0 are its five pixels from
# the left.  Rows 0-6 stand on the baseline, rows 7-8 hold descenders.
_GLYPH_ROWS = (
    "000000000444440400aa0000000aavavaa004fke5u400op248j300cik8lid00440000000248884200842224800"
    "04lel4000044v44000000004480000e00000000000400122488g00ehjlphe004c4444e00eh1248v00v2421he00"
    "26aiv2200vgu11he0068guhhe00v12488800ehhehhe00ehhf12c00004004000004004480248g8420000v0v0000"
    "842124800eh1240400ehnlngf00ehhvhhh00uhhuhhu00ehggghe00uhhhhhu00vgguggv00vgguggg00ehgnhhf00"
    "hhhvhhh00e44444e0072222ic00hikokih00ggggggv00hrllhhh00hhpljhh00ehhhhhe00uhhuggg00ehhhlid00"
    "uhhukih00fgge11u00v44444400hhhhhhe00hhhhha400hhhllla00hha4ahh00hha444400v1248gv00e88888e00"
    "g88422100e22222e004ah0000000000000v084000000000e1fhf00gguhhhu0000egghe0011fhhhf0000ehvge00"
    "698s8880000fhhhf1eggmphhh0040c444e002062222icggikoki00c44444e0000qllll0000mphhh0000ehhhe00"
    "00uhhhugg00fhhhf1100mpggg0000fge1u0088s88960000hhhjd0000hhha40000hhlla0000ha4ah0000hhhhf1e"
    "00v248v00244844200444444440844244800008l20000"
)
GLYPH_WIDTH, GLYPH_HEIGHT, GLYPH_ASCENT = 5, 9, 7
#: horizontal distance between the starts of two characters
ADVANCE = GLYPH_WIDTH + 1


def _glyphs():
    rows = np.array([int(c, 32) for c in _GLYPH_ROWS], dtype=np.uint8).reshape(-1, GLYPH_HEIGHT)
    bits = 1 << np.arange(GLYPH_WIDTH - 1, -1, -1)
    return (rows[:, :, None] & bits) != 0  # (glyph, row, column)


_FONT = _glyphs()


def text_mask(text, scale=1):
    """Boolean pixels of ``text``: GLYPH_HEIGHT x scale rows, ADVANCE x scale
    columns per character.  Characters outside printable ASCII show as '?'."""
    codes = [ord(c) - 32 if 32 <= ord(c) < 127 else ord("?") - 32 for c in text]
    out = np.zeros((GLYPH_HEIGHT, ADVANCE * len(codes)), dtype=bool)
    for i, code in enumerate(codes):
        out[:, i * ADVANCE : i * ADVANCE + GLYPH_WIDTH] = _FONT[code]
    return np.repeat(np.repeat(out, scale, axis=0), scale, axis=1)


def text_width(text, scale=1):
    """Width in pixels of ``text`` without the space after its last character."""
    return max(0, (ADVANCE * len(text) - 1) * scale)


class Canvas:
    """An RGB image to draw on."""

    def __init__(self, width, height, background=WHITE):
        self.pixels = np.empty((int(height), int(width), 3), dtype=np.uint8)
        self.pixels[:] = background

    @property
    def width(self):
        return self.pixels.shape[1]

    @property
    def height(self):
        return self.pixels.shape[0]

    def _paint(self, x0, y0, mask, color):
        """Set the pixels where ``mask`` (rows x columns) is true, its top
        left corner at (x0, y0); what falls outside the canvas is dropped."""
        h, w = mask.shape
        ys, xs = max(0, -y0), max(0, -x0)
        ye, xe = min(h, self.height - y0), min(w, self.width - x0)
        if ye <= ys or xe <= xs:
            return
        region = self.pixels[y0 + ys : y0 + ye, x0 + xs : x0 + xe]
        region[mask[ys:ye, xs:xe]] = color

    def rect(self, x, y, w, h, fill=None, stroke=None):
        """A rectangle filled with ``fill`` and/or outlined one pixel wide."""
        x0, y0 = round(x), round(y)
        x1, y1 = round(x + w), round(y + h)
        if fill is not None and x1 > x0 and y1 > y0:
            self._paint(x0, y0, np.ones((y1 - y0, x1 - x0), dtype=bool), fill)
        if stroke is not None:
            for ax, ay, bx, by in (
                (x0, y0, x1, y0),
                (x0, y1, x1, y1),
                (x0, y0, x0, y1),
                (x1, y0, x1, y1),
            ):
                self.line(ax, ay, bx, by, stroke)

    def line(self, x0, y0, x1, y1, color, width=1):
        """A straight line ``width`` pixels thick."""
        self.polyline([(x0, y0), (x1, y1)], color, width)

    def polyline(self, points, color, width=1):
        """Connected straight lines through ``points`` [(x, y), ...]."""
        pts = np.asarray(points, dtype=np.float64).reshape(-1, 2)
        if not len(pts):
            return
        if len(pts) == 1:
            pts = np.vstack([pts, pts])
        xs, ys = [pts[0, 0]], [pts[0, 1]]
        for (ax, ay), (bx, by) in zip(pts[:-1], pts[1:]):
            n = int(max(abs(bx - ax), abs(by - ay))) + 1
            k = np.arange(1, n + 1) / n
            xs.append(ax + (bx - ax) * k)
            ys.append(ay + (by - ay) * k)
        x = np.round(np.hstack(xs)).astype(np.int64)
        y = np.round(np.hstack(ys)).astype(np.int64)
        off = np.arange(width) - (width - 1) // 2
        x = (x[:, None, None] + off[None, :, None]).ravel()
        y = (y[:, None, None] + off[None, None, :]).ravel()
        keep = (x >= 0) & (x < self.width) & (y >= 0) & (y < self.height)
        self.pixels[y[keep], x[keep]] = color

    def text(self, x, y, text, color=BLACK, anchor="start", scale=1, vertical=False):
        """``text`` with its baseline through (x, y); ``anchor`` says which
        end of it (``start``, ``middle``, ``end``) is at x.  ``vertical``
        turns it a quarter left (reading upwards, baseline through x and
        the anchor on y), like SVG's ``rotate(-90)``."""
        mask = text_mask(text, scale)
        length = text_width(text, scale)
        shift = {"start": 0, "middle": length / 2, "end": length}[anchor]
        if vertical:
            mask = np.rot90(mask)
            self._paint(round(x) - GLYPH_ASCENT * scale, round(y - length + shift), mask, color)
        else:
            self._paint(round(x - shift), round(y) - GLYPH_ASCENT * scale, mask, color)

    def image(self, x, y, w, h, rgb):
        """The RGB raster ``rgb`` (rows, columns, 3) scaled to fill the
        rectangle (nearest neighbour)."""
        x0, y0 = round(x), round(y)
        pw, ph = round(x + w) - x0, round(y + h) - y0
        if pw <= 0 or ph <= 0:
            return
        src = np.asarray(rgb, dtype=np.uint8)
        rows = np.arange(ph) * src.shape[0] // ph
        cols = np.arange(pw) * src.shape[1] // pw
        scaled = src[rows][:, cols]
        ys, xs = max(0, -y0), max(0, -x0)
        ye, xe = min(ph, self.height - y0), min(pw, self.width - x0)
        if ye > ys and xe > xs:
            self.pixels[y0 + ys : y0 + ye, x0 + xs : x0 + xe] = scaled[ys:ye, xs:xe]

    def png(self):
        """The canvas as PNG bytes."""
        return encode_png(self.pixels)
