"""Builds the transfer copy `.gpu/` that travels to the GPU machine.

    python benchmarks/gpu/prepare_assets.py [--dest .gpu] [--side 176] [--quality 85]

`.gpu/` is ignored (`/.gpu/` in `.git/info/exclude`) and never committed:

- `.gpu/shared/`: the `KFT_SHARED` layout the scripts read. The two weights
  (MobileNetV2-0.35 no-top `.weights.h5`, EfficientNet-Lite0 timm folder)
  are copied as they are; the flowers photos (47 MB as shipped, longest side
  200 px, JPEG q90) are re-encoded with Pillow to longest side `--side` px at
  JPEG quality `--quality` so that the whole call stays under 64 MiB. Same
  files, splits and classes.
- `.gpu/whl/`: the wheels the GPU machine lacks (it has jax 0.11.2, torch,
  timm, numpy, Pillow, scikit-learn, pandas, matplotlib, jinja2, h5py,
  safetensors, regex, tokenizers, absl-py, rich, ml-dtypes, protobuf,
  requests; no TensorFlow, no Keras), for Python 3.12 on x86-64.
"""

import os
import pathlib
import shutil
import subprocess
import sys

REPO = pathlib.Path(__file__).resolve().parents[2]
SOURCE = pathlib.Path(os.environ.get("KFT_SHARED", REPO.parent / "shared"))
WHEELS = (
    "keras==3.15.1",
    "keras-hub==0.32.0",
    "optree==0.20.0",
    "namex==0.1.0",
    "keras-tuner==1.4.8",
    "kt-legacy==1.0.5",
    "tomli_w==1.2.0",
)
PLATFORMS = (
    "manylinux_2_28_x86_64",
    "manylinux_2_27_x86_64",
    "manylinux_2_17_x86_64",
    "manylinux2014_x86_64",
    "manylinux1_x86_64",
)


def shrink_flowers(dest, side, quality):
    from PIL import Image

    src_root = SOURCE / "datasets" / "flowers"
    count = 0
    for src in sorted(src_root.rglob("*.jpg")):
        target = dest / "datasets" / "flowers" / src.relative_to(src_root)
        if target.exists():
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        with Image.open(src) as img:
            img = img.convert("RGB")
            img.thumbnail((side, side), Image.BICUBIC)
            img.save(target, quality=quality)
        count += 1
    return count


def main(argv):
    args = dict(zip(argv[::2], argv[1::2], strict=False))
    dest = REPO / args.get("--dest", ".gpu")
    side, quality = int(args.get("--side", 176)), int(args.get("--quality", 85))
    shared = dest / "shared"
    weights = shared / "weights"
    weights.mkdir(parents=True, exist_ok=True)
    shutil.copy2(
        SOURCE / "weights" / "mobilenet_v2_0.35_224_no_top_imagenet.weights.h5",
        weights,
    )
    shutil.copytree(
        SOURCE / "weights" / "efficientnet_lite0_timm_format",
        weights / "efficientnet_lite0_timm_format",
        dirs_exist_ok=True,
    )
    print("re-encoded", shrink_flowers(shared, side, quality), "photos")
    platform_args = [arg for p in PLATFORMS for arg in ("--platform", p)]
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "download",
            "-q",
            "--no-deps",
            "--only-binary=:all:",
            "--python-version",
            "3.12",
            "--implementation",
            "cp",
            *platform_args,
            "-d",
            str(dest / "whl"),
            *WHEELS,
        ],
        check=True,
    )
    total = sum(p.stat().st_size for p in dest.rglob("*") if p.is_file())
    print(f"{dest}: {total / 2**20:.1f} MiB")


if __name__ == "__main__":
    main(sys.argv[1:])
