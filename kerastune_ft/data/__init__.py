"""Data loading and pre-training checks.

`load_images` and `load_texts` turn folders, files, tfds names, arrays and
lists into one `LoadedData` object (`.train`, `.val`, `.test`,
`.class_names`, `.counts`, `.examples`); `class_balance` and `find_leakage`
check it before training; `take_per_class` and `link_per_class` keep a
seeded few examples per class (quick runs, few-shot experiments).
`ArrayBatches` is the `keras.utils.PyDataset` of in-memory arrays that the
loaders return without TensorFlow (`format="pydataset"`).
"""

from kerastune_ft.data._result import LoadedData
from kerastune_ft.data.batches import ArrayBatches
from kerastune_ft.data.checks import (
    ClassBalance,
    LeakageReport,
    balanced_class_weight,
    class_balance,
    find_leakage,
    normalize_text,
)
from kerastune_ft.data.images import load_images
from kerastune_ft.data.subsets import link_per_class, take_per_class
from kerastune_ft.data.texts import load_texts

__all__ = [
    "ArrayBatches",
    "ClassBalance",
    "LeakageReport",
    "LoadedData",
    "balanced_class_weight",
    "class_balance",
    "find_leakage",
    "link_per_class",
    "load_images",
    "load_texts",
    "normalize_text",
    "take_per_class",
]
