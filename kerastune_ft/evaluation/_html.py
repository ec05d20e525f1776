"""HTML and PNG helpers shared by the diagnosis, evaluation and report pages."""

import base64
import html
import io
import math

import numpy as np


def esc(value):
    """Returns `value` as text safe inside HTML (also inside attribute quotes)."""
    return html.escape(str(value), quote=True)


def fmt(value, digits=3):
    """Formats a number for a table cell; `None` and NaN become a dash."""
    if value is None:
        return "–"
    if isinstance(value, float | np.floating):
        if math.isnan(value):
            return "NaN"
        return f"{value:.{digits}f}"
    return str(value)


def figure_png(figure, dpi=100):
    """Renders a matplotlib Figure to PNG bytes (no pyplot, no display)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    buffer = io.BytesIO()
    FigureCanvasAgg(figure)
    figure.savefig(buffer, format="png", dpi=dpi, bbox_inches="tight")
    return buffer.getvalue()


def png_data_uri(png_bytes):
    """Returns a `data:image/png;base64,...` URI for embedding PNG bytes."""
    return "data:image/png;base64," + base64.b64encode(png_bytes).decode("ascii")


def img_tag(png_bytes, alt, css_class="figure"):
    """An `<img>` element embedding PNG bytes."""
    return (
        f'<img class="{esc(css_class)}" alt="{esc(alt)}" '
        f'src="{png_data_uri(png_bytes)}">'
    )


def image_array_png(array):
    """Encodes an image array (H, W, 3) of 0-255 or 0-1 values as PNG bytes."""
    from PIL import Image

    array = np.asarray(array, dtype="float32")
    if array.ndim == 3 and array.shape[-1] == 1:
        array = array[..., 0]
    if array.size and float(np.nanmax(array)) <= 1.0:
        array = array * 255.0
    array = np.clip(np.nan_to_num(array), 0, 255).astype("uint8")
    image = Image.fromarray(array)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def table(header, rows, css_class="kft"):
    """An HTML table; every header and cell is escaped (cells may hold raw
    HTML only when wrapped in `Raw`)."""
    head = "".join(f"<th>{esc(h)}</th>" for h in header)
    body = "".join(
        "<tr>"
        + "".join(
            f"<td>{cell.html if isinstance(cell, Raw) else esc(fmt(cell))}</td>"
            for cell in row
        )
        + "</tr>"
        for row in rows
    )
    return (
        f'<table class="{esc(css_class)}"><thead><tr>{head}</tr></thead>'
        f"<tbody>{body}</tbody></table>"
    )


class Raw:
    """Marks a table cell as already-safe HTML (built by this package)."""

    def __init__(self, html_text):
        self.html = html_text


STYLE = """
body { font-family: -apple-system, Segoe UI, Helvetica, Arial, sans-serif;
       margin: 24px; color: #222; max-width: 1100px; }
h1 { font-size: 1.6em; } h2 { font-size: 1.3em; margin-top: 1.6em;
     border-bottom: 1px solid #ddd; }
table.kft { border-collapse: collapse; margin: 8px 0; font-size: 0.9em; }
table.kft th, table.kft td { border: 1px solid #ccc; padding: 3px 8px;
                             text-align: left; vertical-align: top; }
table.kft th { background: #f3f3f3; }
.verdict { font-size: 1.1em; padding: 10px; border-radius: 6px;
           background: #eef5ff; border-left: 5px solid #3b7dd8; }
.verdict.overfitting, .verdict.underfitting { background: #fff3e8;
                                              border-left-color: #e07b00; }
img.figure { max-width: 100%; }
img.thumb { width: 96px; height: auto; image-rendering: auto; }
.text-sample { white-space: pre-wrap; max-width: 600px; }
"""
