"""One self-contained HTML report of a diagnosis and an evaluation.

The page is rendered by `kerastune_ft.evaluation.render` from jinja2
templates with autoescaping. It has no scripts and no external resources: figures and image
thumbnails are embedded as base64 PNGs, and every string that can come from a
dataset or a user (class names, set names, texts, the title) is HTML-escaped,
so a `<script>` inside a sample text is shown as text and never runs.
"""

import os

from kerastune_ft._files import write_text_atomic
from kerastune_ft.evaluation import render
from kerastune_ft.evaluation.diagnosis import Diagnosis
from kerastune_ft.evaluation.metrics import Evaluation

__all__ = ["Report"]


class Report:
    """A report page made of a `Diagnosis` and/or an `Evaluation`.

    Args:
        diagnosis: what `kft.diagnose` returned, or `None`. Defaults to `None`.
        evaluation: what `kft.evaluate` returned, or `None`. Defaults to
            `None`.
        title: page title. Defaults to `"kerastune_ft report"`.
        data_checks: sentences about problems found in the data before
            training (leakage between splits, imbalance, a class missing
            from a split), shown first. Defaults to `()`.

    Example:

    >>> import os, tempfile, kerastune_ft as kft
    >>> d = kft.diagnose({"loss": [1.0, 0.6, 0.5], "val_loss": [1.0, 0.7, 0.65]})
    >>> report = kft.Report(d, title="demo")
    >>> path = report.save_html(os.path.join(tempfile.mkdtemp(), "report.html"))
    >>> open(path).read().count("<script")
    0
    """

    def __init__(
        self,
        diagnosis=None,
        evaluation=None,
        *,
        title="kerastune_ft report",
        data_checks=(),
    ):
        if diagnosis is not None and not isinstance(diagnosis, Diagnosis):
            raise TypeError(
                "`diagnosis` must be what kft.diagnose returns, or None. "
                f"Received: {type(diagnosis).__name__}."
            )
        if evaluation is not None and not isinstance(evaluation, Evaluation):
            raise TypeError(
                "`evaluation` must be what kft.evaluate returns, or None. "
                f"Received: {type(evaluation).__name__}."
            )
        if diagnosis is None and evaluation is None:
            raise ValueError(
                "A Report needs a diagnosis, an evaluation or both: "
                "kft.Report(kft.diagnose(result), kft.evaluate(model, test_sets))."
            )
        if isinstance(data_checks, str) or not all(
            isinstance(line, str) for line in data_checks
        ):
            raise TypeError(
                "`data_checks` must be a list of sentences (str). "
                f"Received: data_checks={data_checks!r}."
            )
        self.diagnosis = diagnosis
        self.evaluation = evaluation
        self.title = str(title)
        self.data_checks = tuple(data_checks)

    def to_html(self):
        """The full HTML page as a string."""
        return render.report_page(
            self.title, self.diagnosis, self.evaluation, self.data_checks
        )

    def save_html(self, path):
        """Writes the report as one self-contained HTML file.

        Args:
            path: the file to write (parent folders are created).

        Returns:
            `path`.
        """
        folder = os.path.dirname(os.path.abspath(path))
        os.makedirs(folder, exist_ok=True)
        write_text_atomic(path, self.to_html())
        return path

    def figures(self):
        """All report figures as a dict name -> `matplotlib.figure.Figure`."""
        out = {}
        if self.diagnosis is not None and self.diagnosis.epochs:
            out["learning_curves"] = self.diagnosis.plot()
        if self.evaluation is not None:
            ev = self.evaluation
            out["per_class_f1"] = ev.plot_per_class_f1()
            for i, name in enumerate(ev.names):
                out[f"confusion_matrix_{i}_{_slug(name)}"] = ev.plot_confusion_matrix(
                    name
                )
            if ev.domain_shift:
                out["domain_shift"] = ev.plot_domain_shift()
        return out

    def save_plots(self, directory):
        """Saves every figure as a PNG in `directory`.

        Args:
            directory: the folder to write to (created if missing).

        Returns:
            dict name -> path of the PNG file.
        """
        os.makedirs(directory, exist_ok=True)
        paths = {}
        for name, figure in self.figures().items():
            path = os.path.join(directory, f"{name}.png")
            with open(path, "wb") as f:
                f.write(render.figure_png(figure))
            paths[name] = path
        return paths

    def _repr_html_(self):
        return render.fragment_page(
            self.title, self.diagnosis, self.evaluation, self.data_checks
        )

    def __repr__(self):
        return (
            f"Report(title={self.title!r}, diagnosis={self.diagnosis!r}, "
            f"evaluation={self.evaluation!r})"
        )


def _slug(name):
    return "".join(c if c.isalnum() or c in "-_" else "_" for c in str(name))[:40]
