"""The typed run configuration read by `kft.run` and `kerastune-ft train`.

A run is described by a TOML file with a top-level `task` (`"image"` or
`"text"`), an optional `name` and `seed`, and one table per library call.
Every key of `[data]`, `[model]`, `[head]`, `[training]` and `[evaluation]`
is a keyword argument of the function the table feeds, under its own name
(`kft.data.load_images` / `load_texts`; `kft.build_image_classifier` /
`build_text_classifier`; `kft.fine_tune`; `kft.evaluate`). A key left out
is the library's default, never restated here:

```toml
task = "image"
name = "flowers"

[data]          # kft.data.load_images
source = "${KFT_SHARED}/datasets/flowers"
image_size = [160, 160]

[model]         # kft.build_image_classifier
backbone = "mobilenet_v2"
backbone_kwargs = { alpha = 0.35 }
augmentation = "light"

[head]          # kft.build_image_classifier, its head
dropout = 0.2

[training]      # kft.fine_tune
unfreeze = 20

[evaluation]    # kft.evaluate, and extra test sets (other domains)
sets = { other = "path/to/other.txt" }

[output]        # the run directory
dir = "runs/flowers"
```

`load_config` checks every key before any model is built: an unknown key, a
wrong type or a bad value is a `ConfigError` naming the key path, the value
received and what is allowed. `${NAME}` in paths is replaced by the
environment variable `NAME`; `KFT_SHARED` defaults to `../shared`. Configs
written with the older key names (`[augmentation] preset`, `head.units`,
`training.seed`) are still read.
"""

from kerastune_ft.config.loading import (
    apply_overrides,
    config_from_dict,
    expand_path,
    load_config,
    parse_override,
    shared_dir,
)
from kerastune_ft.config.run_config import RunConfig, dump_toml
from kerastune_ft.config.sections import (
    ConfigError,
    DataConfig,
    EvaluationConfig,
    HeadConfig,
    ModelConfig,
    OutputConfig,
    TrainingConfig,
)

__all__ = [
    "ConfigError",
    "DataConfig",
    "EvaluationConfig",
    "HeadConfig",
    "ModelConfig",
    "OutputConfig",
    "RunConfig",
    "TrainingConfig",
    "apply_overrides",
    "config_from_dict",
    "dump_toml",
    "expand_path",
    "load_config",
    "parse_override",
    "shared_dir",
]
