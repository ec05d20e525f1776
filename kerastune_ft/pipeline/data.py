"""The run's data: loaded as its config says, subset, and checked."""

import dataclasses
import os
import pathlib
import tempfile

from kerastune_ft.config import ConfigError

__all__ = ["DataChecks", "check_run_data", "load_run_data"]

# A class this many times larger than another is worth a warning.
IMBALANCE_WARNING_RATIO = 3.0


def image_size(cfg):
    """`data.image_size`, or the registry backbone's default size.

    Args:
        cfg: a `kerastune_ft.config.RunConfig` of an image task.

    Returns:
        `(height, width)`.

    Raises:
        ConfigError: no size is set and the backbone's is unknown.
    """
    size = cfg.data.image_size
    if size is not None:
        return (size, size) if isinstance(size, int) else tuple(size)
    from kerastune_ft.backbones import get_image_backbone_spec

    try:
        default = get_image_backbone_spec(cfg.model.backbone).default_size
    except (TypeError, ValueError):
        raise ConfigError(
            f"`data.image_size` is not set and {cfg.model.backbone!r} is not a "
            "registry backbone, so its size is unknown: set data.image_size = "
            "[height, width]."
        ) from None
    return (default, default)


def load_run_data(cfg, source=None, *, class_names=None):
    """Loads `cfg.data.source` (or another `source`) as the config says.

    The `[data]` keys are passed to `kft.data.load_images` or
    `kft.data.load_texts` unchanged. Another `source` (an evaluation set) is
    loaded whole (no val or test split) with the run's `class_names`. With
    `data.max_per_class` on an image folder, only the chosen files are
    decoded: they are linked into a temporary folder, removed once loaded.

    Args:
        cfg: a `kerastune_ft.config.RunConfig`.
        source: another source loaded the same way. Defaults to `None`
            (`cfg.data.source`).
        class_names: fixes the label order. Defaults to `None`.

    Returns:
        A `kft.data.LoadedData`.

    Example:

    >>> from kerastune_ft.config import config_from_dict
    >>> from kerastune_ft.pipeline import load_run_data
    >>> cfg = config_from_dict({
    ...     "task": "text",
    ...     "data": {"source": "data/reviews/products.txt", "max_per_class": 5},
    ...     "model": {"backbone": "minilm-l6"},
    ... })
    >>> load_run_data(cfg).counts["train"]
    {'0': 5, '1': 5}
    """
    import kerastune_ft as kft

    kwargs = cfg.kwargs("data")
    kwargs.pop("source")
    kwargs["class_names"] = class_names
    if source is not None and source != cfg.data.source:
        kwargs.update(val_split=0.0, test_split=0.0)
    source = source or cfg.data.source
    limit = cfg.data.max_per_class
    if cfg.task == "text":
        data = kft.data.load_texts(source, **kwargs)
    elif limit and os.path.isdir(source):
        kwargs["image_size"] = image_size(cfg)
        with tempfile.TemporaryDirectory(prefix="kft-subset-") as scratch:
            subset = kft.data.link_per_class(
                source, limit, pathlib.Path(scratch) / "subset", seed=cfg.seed
            )
            return kft.data.load_images(str(subset), **kwargs)
    else:
        kwargs["image_size"] = image_size(cfg)
        data = kft.data.load_images(source, **kwargs)
    return kft.data.take_per_class(data, limit, seed=cfg.seed) if limit else data


@dataclasses.dataclass(frozen=True)
class DataChecks:
    """What the checks before training found in a run's data.

    Attributes:
        leakage: the `kft.data.LeakageReport`.
        balance: the `kft.data.ClassBalance`.
        findings: one sentence per problem found; empty when none.
    """

    leakage: object
    balance: object
    findings: tuple

    def to_dict(self):
        """The checks as JSON values (what `metrics.json` holds)."""
        return {
            "has_leakage": self.leakage.has_leakage,
            "leakage_across_splits": self.leakage.across,
            "duplicates_within_splits": self.leakage.within,
            "conflicting_label_groups": self.leakage.conflicts,
            "class_counts": self.balance.counts,
            "imbalance_ratio": self.balance.imbalance_ratio,
            "findings": list(self.findings),
        }


def _leakage_findings(leakage):
    findings = []
    for pair, counts in leakage.across.items():
        first, second = pair.split("/")
        n = max(counts.values(), default=0)
        if n:
            kinds = " / ".join(f"{k} {v}" for k, v in counts.items())
            findings.append(
                f"Leakage: {n} {second} example(s) also appear in {first} "
                f"({kinds}), so the {second} scores are optimistic. "
                "kft.data.find_leakage(data) lists them; remove the copies."
            )
    return findings


def _balance_findings(balance, class_weight):
    findings = []
    for split, counts in balance.counts.items():
        missing = [name for name, n in counts.items() if n == 0]
        if missing and sum(counts.values()):
            findings.append(
                f"Class(es) {', '.join(map(repr, missing))} have no examples in "
                f"{split}: that split cannot measure them."
            )
    ratio = balance.split_ratios.get("train", balance.imbalance_ratio)
    if ratio >= IMBALANCE_WARNING_RATIO and ratio != float("inf"):
        counts = balance.counts.get("train", balance.totals)
        large, small = max(counts, key=counts.get), min(counts, key=counts.get)
        advice = (
            ""
            if class_weight not in (None, "none")
            else ' Consider training.class_weight = "balanced".'
        )
        findings.append(
            f"Imbalanced classes: {large!r} has {ratio:.1f}x the training examples "
            f"of {small!r} ({counts[large]} vs {counts[small]}).{advice}"
        )
    return findings


def check_run_data(data, *, strict=False, class_weight=None):
    """Runs the library's data checks on a run's data: leakage and balance.

    Args:
        data: the run's `kft.data.LoadedData`.
        strict: leakage between splits is an error. Defaults to `False`.
        class_weight: the run's `training.class_weight` (the imbalance advice
            is left out when it is set). Defaults to `None`.

    Returns:
        A `DataChecks`.

    Raises:
        ValueError: `strict` and an example shared by two splits.

    Example:

    >>> import kerastune_ft as kft
    >>> from kerastune_ft.pipeline import check_run_data
    >>> data = kft.data.load_texts(
    ...     (["good", "bad"] * 10, [1, 0] * 10), val_split=0.2)
    >>> check_run_data(data).findings[0][:9]
    'Leakage: '
    """
    import kerastune_ft as kft

    leakage = kft.data.find_leakage(data)
    balance = kft.data.class_balance(data)
    leaks = _leakage_findings(leakage)
    if strict and leaks:
        raise ValueError(
            " ".join(leaks) + " `data.strict` (--strict) makes leakage an error: "
            "deduplicate the splits, or run without --strict to train anyway."
        )
    findings = tuple(leaks + _balance_findings(balance, class_weight))
    return DataChecks(leakage, balance, findings)
