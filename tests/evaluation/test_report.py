"""kft.Report: one self-contained HTML page, escaped data, PNG plots, a real browser.

The browser test opens the page in headless Chromium (Debian package
`chromium`): it must render with no console output at all, a `<script>` put
in a sample text must stay text, and a control page proves the console
capture works. It fails under CI=true when Chromium is missing and skips
elsewhere.
"""

import html.parser
import os
import shutil
import subprocess

import numpy as np
import pytest
import tensorflow as tf
from _tiny import tiny_model

import kerastune_ft as kft

XSS_TEXT = '<script>console.log("kft-xss"); alert("kft-xss")</script> terrible'
XSS_CLASS = "<b>neg</b>"
XSS_SET = '"><img src=x onerror="console.log(1)">'
HISTORY = {
    "loss": [0.9, 0.6, 0.45, 0.35, 0.28, 0.22, 0.18, 0.15, 0.12, 0.1],
    "val_loss": [0.8, 0.6, 0.5, 0.46, 0.44, 0.42, 0.47, 0.5, 0.52, 0.54],
    "accuracy": [0.6, 0.7, 0.8, 0.85, 0.9, 0.92, 0.95, 0.97, 0.98, 0.99],
    "val_accuracy": [0.6, 0.7, 0.75, 0.78, 0.8, 0.8, 0.79, 0.78, 0.78, 0.77],
}


class LookupModel:
    def __init__(self, table):
        self.table = table

    def predict(self, data, verbose=0):
        return np.array(
            [self.table[v.decode()] for batch in data for v in batch.numpy()]
        )


def _text_evaluation():
    texts = ["lovely", "fine", XSS_TEXT, "bad & sad", "so-so"]
    probs = [[0.1, 0.9], [0.3, 0.7], [0.02, 0.98], [0.8, 0.2], [0.6, 0.4]]
    labels = [1, 1, 0, 1, 1]  # "bad & sad" is wrong: it shows in top losses
    model = LookupModel(dict(zip(texts, probs, strict=True)))
    return kft.evaluate(
        model,
        {"in-domain": (texts, labels), XSS_SET: (texts[:4], labels[:4])},
        class_names=[XSS_CLASS, "pos"],
    )


def _image_evaluation():
    model = tiny_model()
    x = np.random.default_rng(0).uniform(0, 255, (12, 8, 8, 3)).astype("float32")
    data = tf.data.Dataset.from_tensor_slices((x, np.arange(12) % 3)).batch(4)
    return kft.evaluate(model, data, class_names=["cat", "dog", "fox"])


class _Collector(html.parser.HTMLParser):
    def __init__(self):
        super().__init__()
        self.tags, self.attrs, self.text = [], [], []

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        self.attrs.extend(attrs)

    def handle_data(self, data):
        self.text.append(data)


def _parse(page):
    collector = _Collector()
    collector.feed(page)
    return collector


def test_html_is_self_contained_and_escaped(tmp_path):
    report = kft.Report(kft.diagnose(HISTORY), _text_evaluation(), title="<i>t</i>")
    path = report.save_html(str(tmp_path / "sub" / "report.html"))
    page = open(path, encoding="utf-8").read()
    parsed = _parse(page)
    assert "script" not in parsed.tags
    assert not [name for name, _ in parsed.attrs if name.startswith("on")]
    sources = [value for name, value in parsed.attrs if name == "src"]
    assert sources and all(s.startswith("data:image/png;base64,") for s in sources)
    assert "http://" not in page and "https://" not in page
    text = "".join(parsed.text)
    # The dangerous strings survive as visible text, not as markup.
    for needle in (XSS_TEXT, XSS_CLASS, XSS_SET, "<i>t</i>", "bad & sad"):
        assert needle in text, needle
    # markupsafe escapes quotes as numeric references.
    assert "&lt;script&gt;console.log(&#34;kft-xss&#34;)" in page
    # Verdict, curves, metric tables, confusion matrices, top losses.
    assert "overfitting from epoch 7" in text
    for heading in ("Metrics", "Domain shift", "Per class", "top losses"):
        assert heading in text, heading
    assert len(sources) == 1 + 1 + 1 + 2  # curves, shift, F1, two matrices


def test_image_top_losses_are_embedded_thumbnails(tmp_path):
    evaluation = _image_evaluation()
    wrong = len(evaluation.results["test"]["top_losses"])
    assert wrong > 0
    page = kft.Report(evaluation=evaluation).to_html()
    parsed = _parse(page)
    thumbs = [
        attrs
        for tag, attrs in zip(parsed.tags, _tag_attrs(page), strict=True)
        if tag == "img" and ("class", "thumb") in attrs
    ]
    assert len(thumbs) == wrong


def _tag_attrs(page):
    out = []

    class P(html.parser.HTMLParser):
        def handle_starttag(self, tag, attrs):
            out.append(attrs)

    P().feed(page)
    return out


def test_save_plots_writes_pngs(tmp_path):
    report = kft.Report(kft.diagnose(HISTORY), _text_evaluation())
    paths = report.save_plots(str(tmp_path / "plots"))
    assert {"learning_curves", "per_class_f1", "domain_shift"} < set(paths)
    matrices = sorted(n for n in paths if n.startswith("confusion_matrix_"))
    assert matrices[0] == "confusion_matrix_0_in-domain"
    # The hostile set name becomes a safe file name.
    assert len(matrices) == 2 and matrices[1].replace("_", "").isalnum()
    for path in paths.values():
        assert os.path.dirname(path) == str(tmp_path / "plots")
        with open(path, "rb") as f:
            assert f.read(8) == b"\x89PNG\r\n\x1a\n"


def test_repr_html_and_repr():
    report = kft.Report(kft.diagnose(HISTORY))
    assert "overfitting from epoch 7" in report._repr_html_()
    assert repr(report).startswith("Report(title='kerastune_ft report'")


@pytest.mark.parametrize(
    "args, error, match",
    [
        ((), ValueError, "needs a diagnosis, an evaluation or both"),
        (("x",), TypeError, "`diagnosis` must be what kft.diagnose returns"),
        ((None, "y"), TypeError, "`evaluation` must be what kft.evaluate returns"),
    ],
)
def test_bad_arguments(args, error, match):
    with pytest.raises(error, match=match):
        kft.Report(*args)


# ---------------------------------------------------------------------------
# Headless Chromium
# ---------------------------------------------------------------------------


def _chromium():
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    message = (
        "Chromium is not installed (Debian: `apt-get install -y chromium`); the "
        "report's browser test needs it."
    )
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail(message + " CI=true requires it.")
    pytest.skip(message)


def _open(browser, page, tmp_path, name):
    """Loads `page` headless; returns (console lines, DOM, screenshot path)."""
    screenshot = tmp_path / f"{name}.png"
    completed = subprocess.run(
        [
            browser,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            f"--user-data-dir={tmp_path / ('profile-' + name)}",
            "--enable-logging=stderr",
            "--v=0",
            "--window-size=1200,2400",
            f"--screenshot={screenshot}",
            "--dump-dom",
            page.as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    console = [line for line in completed.stderr.splitlines() if ":CONSOLE" in line]
    return console, completed.stdout, screenshot


def test_report_renders_in_headless_chromium(tmp_path):
    browser = _chromium()
    # Control: the capture sees console output and script-built DOM.
    control = tmp_path / "control.html"
    control.write_text(
        "<!DOCTYPE html><html><body><p id=p>static</p><script>"
        'console.error("kft-control"); document.getElementById("p").textContent'
        ' = "kft-ran";</script></body></html>'
    )
    console, dom, _ = _open(browser, control, tmp_path, "control")
    assert any("kft-control" in line for line in console), console
    assert "kft-ran" in dom

    report = kft.Report(kft.diagnose(HISTORY), _text_evaluation(), title="browser")
    page = tmp_path / "report.html"
    report.save_html(str(page))
    console, dom, screenshot = _open(browser, page, tmp_path, "report")
    assert console == [], console  # no errors, and the sample script never ran
    assert "kft-xss" not in " ".join(console)
    parsed = _parse(dom)
    assert "script" not in parsed.tags
    assert XSS_TEXT in "".join(parsed.text)
    assert "overfitting from epoch 7" in dom
    assert screenshot.stat().st_size > 20_000  # a rendered page, not a blank one
    keep = os.environ.get("KFT_REPORT_SCREENSHOT")
    if keep:  # for a human look: KFT_REPORT_SCREENSHOT=/tmp/report.png
        shutil.copy(screenshot, keep)
