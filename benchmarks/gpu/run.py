"""Runs GPU benchmark jobs one after another, each in a fresh process.

    python benchmarks/gpu/run.py JOB [JOB ...] [--out DIR] [--budget SECONDS]

Each job prints a `RESULT {json}` line; the runner collects them into
`DIR/results.json` (DIR defaults to `$OUT`, else `/tmp/kft_gpu`), appends
every child's output to `DIR/log.txt`, and prints a short table last. A job
that fails or outlives its share of `--budget` is recorded as such and the
next one runs. Jobs (see JOBS below): `env`, `baseline`, `baseline_bf16`,
`baseline_cold` / `baseline_warm` (JAX persistent cache), `throughput`,
`timm_frozen`, `timm_full`, `timm_full_bf16`, `kft`, `kft_cold`, `kft_warm`,
`kft_noautotune` / `baseline_noautotune` (XLA's GPU autotuning off), `kft_profile`,
`kft_bf16`, `kft_lite0_frozen`, `kft_lite0_full`, `kft_large`, `smoke_torch`.
"""

import json
import os
import pathlib
import subprocess
import sys
import time

HERE = pathlib.Path(__file__).resolve().parent
PY = sys.executable
JAX = {"KERAS_BACKEND": "jax"}
JAX_CACHE = "/tmp/kft_bench_jax_cache"


def _cache_env():
    """JAX's persistent compilation cache, set before JAX is imported.

    Set later (`jax.config.update` after Keras' import), it is silently
    ignored: JAX decides once, at its first compilation, whether a cache is
    used. The folder lies outside $OUT: it is many files, and 8 come back.
    """
    return {
        "KERAS_BACKEND": "jax",
        "JAX_COMPILATION_CACHE_DIR": JAX_CACHE,
        "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS": "0",
        "JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES": "-1",
    }


ENV_SCRIPT = (
    "import sys, platform, importlib\n"
    "print('python', sys.version.split()[0], platform.machine())\n"
    "for name in ('numpy', 'jax', 'jaxlib', 'keras', 'keras_hub', 'torch', 'timm',"
    " 'PIL', 'sklearn', 'h5py', 'optree'):\n"
    "    try:\n"
    "        m = importlib.import_module(name)\n"
    "        print(name, getattr(m, '__version__', '?'))\n"
    "    except Exception as e:\n"
    "        print(name, 'MISSING', type(e).__name__, e)\n"
    "import jax; print('jax devices', jax.devices())\n"
    "print('tensorflow imported:', 'tensorflow' in sys.modules)\n"
    "print('RESULT', '{\"impl\": \"env\"}')\n"
)

# name: (argv after python, extra environment, timeout seconds)
JOBS = {
    "env": (["-c", ENV_SCRIPT], JAX, 120),
    "baseline": ([HERE / "keras_baseline.py"], JAX, 240),
    "baseline_bf16": (
        [HERE / "keras_baseline.py", "--dtype", "mixed_bfloat16"],
        JAX,
        240,
    ),
    "baseline_cold": ([HERE / "keras_baseline.py"], "cache", 240),
    "baseline_warm": ([HERE / "keras_baseline.py"], "cache", 240),
    "throughput": (
        [HERE / "throughput.py", "--large", "50000", "--lite0", "1"],
        JAX,
        400,
    ),
    "timm_frozen": ([HERE / "timm_peer.py", "--mode", "frozen"], {}, 240),
    "timm_full": ([HERE / "timm_peer.py", "--mode", "full"], {}, 300),
    "timm_full_bf16": (
        [HERE / "timm_peer.py", "--mode", "full", "--amp", "bf16"],
        {},
        300,
    ),
    "kft": ([HERE / "kft_image.py"], JAX, 300),
    "kft_cold": ([HERE / "kft_image.py"], "cache", 300),
    "kft_warm": ([HERE / "kft_image.py"], "cache", 300),
    # cProfile of the kft run, written to DIR/kft.prof ("{out}" is DIR).
    "kft_profile": (
        ["-m", "cProfile", "-o", "{out}/kft.prof", HERE / "kft_image.py"],
        JAX,
        300,
    ),
    "kft_noautotune": (
        [HERE / "kft_image.py"],
        {"KERAS_BACKEND": "jax", "XLA_FLAGS": "--xla_gpu_autotune_level=0"},
        300,
    ),
    "baseline_noautotune": (
        [HERE / "keras_baseline.py"],
        {"KERAS_BACKEND": "jax", "XLA_FLAGS": "--xla_gpu_autotune_level=0"},
        240,
    ),
    "kft_bf16": (
        [HERE / "kft_image.py", "--mixed-precision", "mixed_bfloat16"],
        JAX,
        300,
    ),
    "kft_lite0_frozen": ([HERE / "kft_image.py", "--backbone", "lite0"], JAX, 300),
    "kft_lite0_full": (
        [HERE / "kft_image.py", "--backbone", "lite0", "--mode", "full"],
        JAX,
        400,
    ),
    "kft_large": ([HERE / "kft_image.py", "--large", "50000"], JAX, 400),
    "smoke_torch": (
        [HERE.parents[1] / "tests" / "_backend_smoke.py"],
        {"KERAS_BACKEND": "torch"},
        300,
    ),
}


def run_job(name, out, log, deadline):
    argv, extra, timeout = JOBS[name]
    env = dict(os.environ, PYTHONUNBUFFERED="1", TF_CPP_MIN_LOG_LEVEL="3")
    env.update(_cache_env() if extra == "cache" else extra)
    timeout = max(5, min(timeout, deadline - time.time()))
    start = time.time()
    cmd = [PY, *(str(a).replace("{out}", str(out)) for a in argv)]
    try:
        done = subprocess.run(
            cmd,
            env=env,
            cwd=HERE,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        stdout, stderr, code = done.stdout, done.stderr, done.returncode
    except subprocess.TimeoutExpired as exc:
        stdout = exc.stdout.decode() if isinstance(exc.stdout, bytes) else exc.stdout
        stderr = exc.stderr.decode() if isinstance(exc.stderr, bytes) else exc.stderr
        stdout, stderr, code = stdout or "", (stderr or "") + "\nTIMEOUT", -9
    took = time.time() - start
    with open(log, "a", encoding="utf-8") as f:
        f.write(f"\n===== {name} (rc {code}, {took:.1f} s): {' '.join(cmd)}\n")
        f.write(stdout)
        f.write("\n----- stderr (last 6000 chars)\n" + stderr[-6000:])
    result = None
    for line in stdout.splitlines():
        if line.startswith("RESULT "):
            result = json.loads(line[len("RESULT ") :])
    if result is None:
        tail = (stderr or stdout).strip().splitlines()[-3:]
        result = {"error": f"rc {code}: " + " | ".join(tail)}
    result["job"], result["process_s"] = name, round(took, 1)
    return result, stdout


def table(results):
    lines = [
        "| job | wall s | process s | val acc | epochs | compile s (XLA compiles, "
        "cache hits) | phases |",
        "| --- | ---: | ---: | ---: | ---: | --- | --- |",
    ]
    for r in results:
        if "error" in r:
            lines.append(
                f"| {r['job']} | FAILED | {r['process_s']} | | | | {r['error'][:160]} |"
            )
            continue
        jax = r.get("jax", {})
        compiled = (
            f"{jax['compile_s']} ({jax['xla_compiles']}, {jax['cache_hits']})"
            if jax
            else ""
        )
        phases = ", ".join(f"{k} {v}" for k, v in r.get("phases", {}).items())
        lines.append(
            f"| {r['job']} | {r.get('seconds', '')} | {r['process_s']} | "
            f"{r.get('val_accuracy', '')} | {r.get('epochs', '')} | {compiled} | "
            f"{phases} |"
        )
    return "\n".join(lines)


def main(argv):
    out = pathlib.Path(os.environ.get("OUT") or "/tmp/kft_gpu")
    budget = 540.0
    names = []
    it = iter(argv)
    for arg in it:
        if arg == "--out":
            out = pathlib.Path(next(it))
        elif arg == "--budget":
            budget = float(next(it))
        elif arg in JOBS:
            names.append(arg)
        else:
            raise SystemExit(f"unknown job {arg!r}; jobs: {', '.join(JOBS)}")
    out.mkdir(parents=True, exist_ok=True)
    deadline = time.time() + budget
    results = []
    for name in names:
        if time.time() > deadline - 5:
            results.append({"job": name, "process_s": 0, "error": "skipped: budget"})
            continue
        result, stdout = run_job(name, out, out / "log.txt", deadline)
        results.append(result)
        if name in ("env", "throughput", "smoke_torch"):
            print(stdout[-3000:], flush=True)
        print(f"[{name}] {json.dumps(result)[:600]}", flush=True)
        (out / "results.json").write_text(json.dumps(results, indent=1))
    print()
    print(table(results))


if __name__ == "__main__":
    main(sys.argv[1:])
