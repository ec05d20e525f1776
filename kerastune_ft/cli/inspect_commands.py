"""`describe` and `backbones`: what a backbone holds and what is available."""

import glob
import os
import pathlib

from kerastune_ft._quiet import load_frameworks
from kerastune_ft.cli.errors import EXIT_OK, EXIT_USAGE, UsageError

__all__ = ["backbones_command", "describe_command"]


def _backbone_arguments(items):
    from kerastune_ft.config import parse_override

    kwargs = {}
    for item in items:
        keys, value = parse_override(item)
        if len(keys) != 1:
            raise UsageError(f"--arg takes name=value. Received: {item!r}.")
        kwargs[keys[0]] = value
    return kwargs


def describe_command(args):
    """`kerastune-ft describe BACKBONE`: its layers or freezing units."""
    load_frameworks()
    import kerastune_ft as kft
    from kerastune_ft import backbones, freezing

    name = args.backbone
    kwargs = _backbone_arguments(args.arg)
    try:
        spec = backbones.get_image_backbone_spec(name)
    except (TypeError, ValueError):
        spec = None
    if spec is not None:
        size = args.image_size or spec.default_size
        model = spec.build(input_shape=(size, size, 3), weights=None, **kwargs)
        title = (
            f"{spec.family} ({spec.name}) at {size}x{size}: "
            f"preprocessing {spec.preprocessing!r}"
        )
        unit = "layers"
    elif name.lower() in backbones.TEXT_BACKBONE_ALIASES or os.path.isdir(name):
        if os.path.isdir(name) and not (pathlib.Path(name) / "config.json").is_file():
            raise UsageError(f"{name!r} is a folder without config.json.")
        try:
            model, _ = backbones.load_text_backbone(name, load_weights=False)
            unit = "units"
        except ValueError:
            model, _ = backbones.load_keras_hub_backbone(name, load_weights=False)
            unit = "layers"
        title = f"{type(model).__name__} from {name!r}"
    else:
        # Raises the registry's error with close matches and accepted forms.
        backbones.get_image_backbone_spec(name)
        return EXIT_USAGE
    rows = kft.describe_layers(model, print_fn=print if args.layers else None)
    total = sum(r["params"] for r in rows)
    print(f"{title}; {len(rows)} layers, {total:,} parameters.")
    split = freezing.backbone_units(model)
    if split.transformer:
        print(
            f"Freezing units ({len(split.names)}): {', '.join(split.names)}. "
            'freeze=N freezes the embeddings and the first N blocks; "embeddings" '
            "trains every block."
        )
    else:
        print(
            f"freeze counts {unit}: freeze=-N trains the last N layers, "
            f"freeze=N freezes the first N, freeze=0.8 the first 80%. Pass "
            "--layers to see the table."
        )
    return EXIT_OK


# File names Keras downloads for `weights="imagenet"`, include_top=False.
_WEIGHT_FILES = {
    "MobileNet": "mobilenet_*_tf_no_top.h5",
    "MobileNetV2": "mobilenet_v2_weights_tf_dim_ordering_tf_kernels_*_no_top.h5",
    "MobileNetV3": "weights_mobilenet_v3_{variant}*_no_top_v2.h5",
    "EfficientNet": "{compact}_notop.h5",
    "EfficientNetV2": "efficientnetv2-{suffix}_notop.h5",
    "ConvNeXt": "{name}_notop.h5",
    "NASNet": "{name}_no_top.h5",
}


def _weights_pattern(spec):
    template = _WEIGHT_FILES.get(
        spec.family, "{compact}_weights_tf_dim_ordering_tf_kernels_notop.h5"
    )
    compact = spec.name.replace("_", "")
    if spec.family in ("InceptionV3", "InceptionResNetV2"):
        compact = spec.name
    return template.format(
        name=spec.name,
        compact=compact,
        variant=spec.name.rsplit("_", 1)[-1],
        suffix=spec.name.rsplit("_", 1)[-1],
    )


def _local_weights(spec):
    from kerastune_ft.backbones import weights_search_dirs

    pattern = _weights_pattern(spec)
    for directory in weights_search_dirs():
        matches = sorted(glob.glob(os.path.join(directory, pattern)))
        if matches:
            return matches
    return []


def backbones_command(args):
    """`kerastune-ft backbones`: every backbone, and which work offline."""
    load_frameworks()
    from kerastune_ft import backbones
    from kerastune_ft.config import shared_dir

    print("Image backbones (kft.build_image_classifier / model.backbone):")
    print(f"  {'name':<22} {'family':<18} {'size':>4}  {'prep':<6} offline weights")
    offline = 0
    for name in backbones.list_image_backbones():
        spec = backbones.get_image_backbone_spec(name)
        local = _local_weights(spec)
        offline += bool(local)
        where = (
            ", ".join(os.path.basename(p) for p in local)
            if local
            else "no (downloads from Keras' servers)"
        )
        if args.offline and not local:
            continue
        print(
            f"  {name:<22} {spec.family:<18} {spec.default_size:>4}  "
            f"{spec.preprocessing:<6} {where}"
        )
    dirs = backbones.weights_search_dirs()
    print(
        f"  {offline} with local ImageNet weights; searched: "
        + (", ".join(dirs) if dirs else f"nothing (set ${backbones.ENV_WEIGHTS_DIR})")
    )
    print("\nText backbones (kft.build_text_classifier / model.backbone):")
    for alias in backbones.TEXT_BACKBONE_ALIASES:
        resolved = backbones.resolve_text_backbone(alias)
        status = (
            f"offline: {resolved}"
            if os.path.isdir(resolved)
            else f"not installed, downloads {resolved}"
        )
        print(f"  {alias:<22} {status}")
    print(
        "  any Hugging Face / keras-hub folder (config.json + weights) works "
        "offline; hf:// and kaggle:// handles and keras-hub preset names download."
    )
    weights_root = pathlib.Path(shared_dir()) / "weights"
    folders = (
        sorted(p for p in weights_root.iterdir() if (p / "config.json").is_file())
        if weights_root.is_dir()
        else []
    )
    if folders:
        print(f"\nLocal keras-hub preset folders in {weights_root}:")
        for folder in folders:
            print(f"  {folder}")
    return EXIT_OK
