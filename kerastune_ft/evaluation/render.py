"""HTML rendering of diagnoses, evaluations and reports (jinja2 templates).

The result objects (`Diagnosis`, `Evaluation`) hold numbers and text; this
module turns them into HTML with the templates in
`kerastune_ft/evaluation/templates/`. Autoescaping is on for every template,
so any string from a dataset or a user (class names, set names, texts, the
title) is shown as text and never runs. Figures and image thumbnails are
embedded as base64 PNG data URIs: the pages need nothing from outside.
"""

import base64
import datetime
import functools
import io
import math

import jinja2
import markupsafe
import numpy as np

__all__ = [
    "diagnosis_html",
    "evaluation_html",
    "figure_png",
    "fmt",
    "fragment_page",
    "image_array_png",
    "report_page",
]


def fmt(value, digits=3):
    """Formats a number for a table cell; `None` becomes a dash, NaN "NaN".

    Example:

    >>> from kerastune_ft.evaluation.render import fmt
    >>> fmt(0.12345), fmt(None), fmt(7), fmt("a<b")
    ('0.123', '–', '7', 'a<b')
    """
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


def image_array_png(array):
    """Encodes an image array (H, W, 3) of 0-255 or 0-1 values as PNG bytes."""
    from PIL import Image

    array = np.asarray(array, dtype="float32")
    if array.ndim == 3 and array.shape[-1] == 1:
        array = array[..., 0]
    if array.size and float(np.nanmax(array)) <= 1.0:
        array = array * 255.0
    array = np.clip(np.nan_to_num(array), 0, 255).astype("uint8")
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG")
    return buffer.getvalue()


def _data_uri(png_bytes):
    return "data:image/png;base64," + base64.b64encode(png_bytes).decode("ascii")


def _figure_uri(figure):
    return _data_uri(figure_png(figure))


@functools.cache
def _environment():
    environment = jinja2.Environment(
        loader=jinja2.PackageLoader("kerastune_ft.evaluation", "templates"),
        autoescape=True,
        trim_blocks=True,
        lstrip_blocks=True,
        undefined=jinja2.StrictUndefined,
    )
    environment.filters["fmt"] = fmt
    return environment


def _render(template, **context):
    return markupsafe.Markup(_environment().get_template(template).render(**context))


def diagnosis_html(diagnosis, *, include_plot=True):
    """A `Diagnosis` as an HTML fragment: verdict, suggestions, curves, table.

    Args:
        diagnosis: what `kft.diagnose` returned.
        include_plot: embed the learning curves as a PNG. Defaults to `True`.

    Returns:
        The HTML fragment (a `markupsafe.Markup` string).

    Example:

    >>> import kerastune_ft as kft
    >>> from kerastune_ft.evaluation.render import diagnosis_html
    >>> d = kft.diagnose({"loss": [1.0, 0.6], "val_loss": [1.0, 0.7]})
    >>> "still improving" in diagnosis_html(d, include_plot=False)
    True
    """
    header, rows = diagnosis.table()
    curves = None
    if include_plot and diagnosis.epochs:
        curves = _figure_uri(diagnosis.plot())
    return _render(
        "diagnosis.html.j2", d=diagnosis, curves=curves, header=header, rows=rows
    )


def _set_context(evaluation, name, result, include_plots, thumbnails):
    """What the template shows for one test set."""
    top = []
    for t in result["top_losses"]:
        text = t["input"] if isinstance(t["input"], str) else None
        thumbnail = None
        if text is None and thumbnails:
            thumbnail = _data_uri(image_array_png(t["input"]))
        top.append({**t, "text": text, "thumbnail": thumbnail})
    confusion = None
    if include_plots:
        confusion = _figure_uri(evaluation.plot_confusion_matrix(name))
    return {
        "name": name,
        "confusion": confusion,
        "confusion_rows": [
            [c] + row
            for c, row in zip(
                evaluation.class_names, result["confusion_matrix"], strict=True
            )
        ],
        "most_confused": [
            [p["true"], p["predicted"], p["count"], p["fraction_of_true"]]
            for p in result["most_confused"]
        ],
        "top_losses": top,
    }


def evaluation_html(evaluation, *, include_plots=True, thumbnails=True):
    """An `Evaluation` as an HTML fragment.

    Args:
        evaluation: what `kft.evaluate` returned.
        include_plots: embed the figures as PNGs (else the confusion
            matrices are tables). Defaults to `True`.
        thumbnails: show image top losses as thumbnails. Defaults to `True`.

    Returns:
        The HTML fragment (a `markupsafe.Markup` string).

    Example:

    >>> import numpy as np, keras, kerastune_ft as kft
    >>> from kerastune_ft.evaluation.render import evaluation_html
    >>> model = keras.Sequential(
    ...     [keras.Input((2,)), keras.layers.Dense(2, activation="softmax")])
    >>> ev = kft.evaluate(model, (np.eye(2), np.array([0, 1])),
    ...                   class_names=["<b>cat</b>", "dog"])
    >>> page = evaluation_html(ev, include_plots=False)
    >>> "&lt;b&gt;cat&lt;/b&gt;" in page and "<b>cat</b>" not in page
    True
    """
    ev = evaluation
    plots = {"domain_shift": None, "per_class_f1": None}
    if include_plots:
        plots["per_class_f1"] = _figure_uri(ev.plot_per_class_f1())
        if ev.domain_shift:
            plots["domain_shift"] = _figure_uri(ev.plot_domain_shift())
    shift_rows = [
        [
            r["set"],
            r["n"],
            r["accuracy"],
            r["accuracy_drop"],
            f"{r['accuracy_drop_relative'] * 100:.1f}%",
            r["f1_macro"],
            r["f1_macro_drop"],
            r["ece"],
        ]
        for r in ev.domain_shift
    ]
    per_class_rows = [
        [name, c]
        + [r["per_class"][c][k] for k in ("precision", "recall", "f1", "support")]
        for name, r in ev.results.items()
        for c in ev.class_names
    ]
    sets = [
        _set_context(ev, name, r, include_plots, thumbnails)
        for name, r in ev.results.items()
    ]
    return _render(
        "evaluation.html.j2",
        ev=ev,
        plots=plots,
        summary_header=ev.SUMMARY_HEADER,
        summary_rows=ev.summary_rows(),
        shift_rows=shift_rows,
        per_class_rows=per_class_rows,
        sets=sets,
    )


def _sections(diagnosis, evaluation):
    return {
        "diagnosis": diagnosis_html(diagnosis) if diagnosis is not None else None,
        "evaluation": evaluation_html(evaluation) if evaluation is not None else None,
    }


def report_page(title, diagnosis=None, evaluation=None, data_checks=()):
    """The full, self-contained HTML page of a `kft.Report`.

    Args:
        title: the page title.
        diagnosis: a `Diagnosis`, or `None`. Defaults to `None`.
        evaluation: an `Evaluation`, or `None`. Defaults to `None`.
        data_checks: sentences about the data, shown first. Defaults to `()`.

    Returns:
        The page as a string.

    Example:

    >>> from kerastune_ft.evaluation.render import report_page
    >>> page = report_page("a <report>", data_checks=["class 'x' is missing"])
    >>> "<title>a &lt;report&gt;</title>" in page, page.count("<script")
    (True, 0)
    """
    stamp = datetime.datetime.now().strftime("%Y-%m-%d %H:%M")
    return str(
        _render(
            "report.html.j2",
            title=title,
            stamp=stamp,
            checks=list(data_checks),
            **_sections(diagnosis, evaluation),
        )
    )


def fragment_page(title=None, diagnosis=None, evaluation=None, data_checks=()):
    """What Jupyter shows (`_repr_html_`): the style and the sections.

    Args:
        title: a heading, or `None` for a lone diagnosis or evaluation.
            Defaults to `None`.
        diagnosis: a `Diagnosis`, or `None`. Defaults to `None`.
        evaluation: an `Evaluation`, or `None`. Defaults to `None`.
        data_checks: sentences about the data. Defaults to `()`.

    Returns:
        An HTML fragment (no `<html>` element) as a string.

    Example:

    >>> from kerastune_ft.evaluation.render import fragment_page
    >>> fragment_page("t", data_checks=["ok"]).startswith("<style>")
    True
    """
    return str(
        _render(
            "fragment.html.j2",
            title=title,
            checks=list(data_checks),
            **_sections(diagnosis, evaluation),
        )
    )
