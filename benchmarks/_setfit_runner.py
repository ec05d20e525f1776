"""SetFit side of `few_shot.py`; runs inside the SetFit virtual environment.

    /work/setfit-venv/bin/python benchmarks/_setfit_runner.py JOBS OUT [WORKDIR]

JOBS and OUT are JSON files (`-` as JOBS reads stdin); WORKDIR, by default a
temporary folder deleted at the end, receives SetFit's checkpoints. It must
not import kerastune_ft, Keras or TensorFlow: PyTorch and TensorFlow live in
separate environments.

JOBS is `{"model": <sentence-transformers folder>, "jobs": [{"id", "seed",
"train_texts", "train_labels", "tests": {name: [texts]}}]}`, written by
`few_shot.py`. For each job: `SetFitModel.from_pretrained(model)`,
`setfit.Trainer` with `TrainingArguments(seed=job["seed"])` and nothing else
(every other argument is the library's default: 1 contrastive epoch, batch 16,
oversampled pairs, body learning rate 2e-5, logistic-regression head), then
`model.predict` on every test set. OUT holds the predicted class ids and the
seconds of each job; scoring is `few_shot.py`'s, shared with kerastune_ft.
`few_shot.py` also sets `HF_HUB_OFFLINE=1` and `TRANSFORMERS_OFFLINE=1` (the
model is a local folder) and leaves PyTorch's thread count at its default.
"""

import json
import os
import sys
import tempfile
import time


def run_job(model_dir, job):
    """Trains one SetFit model on a job's draw; returns its result dict."""
    import datasets
    import numpy as np
    import setfit

    start = time.perf_counter()
    model = setfit.SetFitModel.from_pretrained(model_dir)
    train = datasets.Dataset.from_dict(
        {"text": job["train_texts"], "label": job["train_labels"]}
    )
    # Only the seed is set: the comparison is against SetFit's defaults.
    args = setfit.TrainingArguments(seed=job["seed"])
    trainer = setfit.Trainer(model=model, args=args, train_dataset=train)
    trainer.train()
    fit_seconds = time.perf_counter() - start
    start = time.perf_counter()
    predictions = {
        name: [int(v) for v in np.asarray(model.predict(texts))]
        for name, texts in job["tests"].items()
    }
    return {
        "id": job["id"],
        "predictions": predictions,
        "fit_seconds": fit_seconds,
        "predict_seconds": time.perf_counter() - start,
        "info": {
            "setfit": setfit.__version__,
            # The contrastive phase's optimizer steps (public HF Trainer state).
            "steps": int(trainer.st_trainer.state.global_step),
        },
    }


def main(argv):
    jobs_path, out_path = argv[0], os.path.abspath(argv[1])
    workdir = argv[2] if len(argv) > 2 else None
    if jobs_path == "-":
        text = sys.stdin.read()
    else:
        with open(jobs_path, encoding="utf-8") as jobs:
            text = jobs.read()
    spec = json.loads(text)
    # `TrainingArguments.output_dir` defaults to "checkpoints" in the working
    # directory, and SetFit saves one at the end of training (~260 MB with the
    # optimizer state): keep them out of the repository, and delete them.
    if workdir:
        os.chdir(workdir)
        run_all(spec, out_path)
        return
    with tempfile.TemporaryDirectory(prefix="setfit_") as work:
        os.chdir(work)
        run_all(spec, out_path)
        os.chdir("/")


def run_all(spec, out_path):
    """Runs every job, writing OUT after each one."""
    results = []
    for job in spec["jobs"]:
        results.append(run_job(spec["model"], job))
        print(
            f"setfit {job['id']}: {results[-1]['fit_seconds']:.1f} s fit, "
            f"{results[-1]['predict_seconds']:.1f} s predict",
            file=sys.stderr,
            flush=True,
        )
        # Written after every job, through a rename, so that a caller that
        # stops this process on a time budget keeps the finished jobs.
        with open(out_path + ".tmp", "w", encoding="utf-8") as out:
            json.dump({"results": results}, out)
        os.replace(out_path + ".tmp", out_path)


if __name__ == "__main__":
    main(sys.argv[1:])
