"""HTML rendering through jinja2 templates (`kerastune_ft.evaluation.render`).

The full report (escaping, self-containment, headless chromium) is tested
in test_report.py; here: the templates ship with the package, autoescaping
is on for each, and the plot-free variants render tables instead.
"""

import configparser
import importlib.resources
import pathlib

import keras
import numpy as np

import kerastune_ft as kft
from kerastune_ft.evaluation import render

TEMPLATES = (
    "_macros.html.j2",
    "_sections.html.j2",
    "diagnosis.html.j2",
    "evaluation.html.j2",
    "fragment.html.j2",
    "report.html.j2",
    "style.css",
)


def test_templates_ship_with_the_package():
    folder = importlib.resources.files("kerastune_ft.evaluation") / "templates"
    assert sorted(p.name for p in folder.iterdir()) == sorted(TEMPLATES)
    setup = configparser.ConfigParser()
    setup.read(pathlib.Path(__file__).resolve().parents[2] / "setup.cfg")
    assert "templates/*" in setup["options.package_data"]["kerastune_ft.evaluation"]
    assert "jinja2" in setup["options"]["install_requires"].split()


def test_plot_free_fragments_are_tables_and_escaped():
    model = keras.Sequential(
        [keras.Input((2,)), keras.layers.Dense(2, activation="softmax")]
    )
    x, y = np.eye(2), np.array([0, 1])
    ev = kft.evaluate(model, {"<set>": (x, y)}, class_names=["<b>a</b>", "b"])
    page = render.evaluation_html(ev, include_plots=False, thumbnails=False)
    assert "<img" not in page and "image #" in page
    assert "true \\ predicted" in page  # the confusion matrix as a table
    assert "&lt;b&gt;a&lt;/b&gt;" in page and "<b>a</b>" not in page
    assert "&lt;set&gt;: confusion matrix" in page
    d = kft.diagnose({"loss": [1.0, 0.6, 0.5], "val_loss": [1.0, 0.7, 0.65]})
    fragment = render.diagnosis_html(d, include_plot=False)
    assert "<img" not in fragment and "<table" in fragment
    assert fragment.count("<tr>") == 1 + 3  # header and one row per epoch
