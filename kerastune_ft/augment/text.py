"""Text augmentation with nlpaug, generated once and cached on disk.

Per-step Python augmentation (`tf.py_function` / `tf.numpy_function`) holds
the GIL and starves the training loop. `augment_dataset` instead writes `K`
variants of every training sentence ahead of time, on all CPU cores (worker
processes that never touch TensorFlow), caches them on disk keyed by the
content and the settings, and returns a `tf.data.Dataset` that mixes the
originals with their variants. `augment_dataset(..., on_the_fly=True)` keeps
the per-step mode for comparison; it is slower (see
`benchmarks/text_augment_speed.py`).

Resources are never downloaded: synonym replacement needs the NLTK WordNet
corpus and POS tagger (`NLTK_DATA`), back-translation and contextual
embeddings need local model directories; when one is missing the error says
which and how to install it.
"""

import concurrent.futures
import hashlib
import json
import multiprocessing
import os
import pathlib
import random
import re
import tempfile

import numpy as np

from kerastune_ft._quiet import import_tensorflow
from kerastune_ft._validation import check_choice, check_number

__all__ = ["TextAugmenter", "augment_dataset", "augment_texts"]

WORD_KINDS = ("synonym", "swap", "delete", "crop", "tfidf_insert", "tfidf_substitute")
CHAR_KINDS = ("keyboard", "ocr")
MODEL_KINDS = ("back_translation", "contextual")
KINDS = WORD_KINDS + CHAR_KINDS + MODEL_KINDS
_TFIDF_KINDS = ("tfidf_insert", "tfidf_substitute")
_COMBINE = ("sample", "chain")
_CACHE_VERSION = 1
# nlpaug's TF-IDF model files hold one "word score" per line: words must not
# contain spaces, so train it on lowercase \w+ tokens.
_WORD = re.compile(r"\w+")

# (resource path for nltk.data.find, package name for nltk.downloader)
_NLTK_RESOURCES = {
    "synonym": (
        ("corpora/wordnet/", "wordnet"),
        ("taggers/averaged_perceptron_tagger_eng/", "averaged_perceptron_tagger_eng"),
    ),
}


class MissingResourceError(LookupError):
    """An augmentation resource (NLTK data, a local model) is not installed."""


def _require_nltk_resources(kind):
    """Fails fast, and never downloads, when NLTK data for `kind` is missing.

    nlpaug 1.1.11 calls `nltk.download` when WordNet is missing, which hangs
    or fails offline; checking first turns that into a clear error.
    """
    try:
        import nltk
    except ImportError as error:
        raise MissingResourceError(
            f"The {kind!r} augmentation needs NLTK: `pip install nltk`."
        ) from error
    # NLTK reads NLTK_DATA only when it is imported; honour a later setting.
    for folder in reversed(os.environ.get("NLTK_DATA", "").split(os.pathsep)):
        if folder and folder not in nltk.data.path:
            nltk.data.path.insert(0, folder)
    missing = []
    for path, package in _NLTK_RESOURCES.get(kind, ()):
        try:
            nltk.data.find(path)
        except LookupError:
            missing.append(package)
    if missing:
        raise MissingResourceError(
            f"The {kind!r} augmentation needs the NLTK resource(s) "
            f"{', '.join(missing)}, which were not found in {nltk.data.path}. "
            f"Install them with `python -m nltk.downloader {' '.join(missing)}` "
            "on a machine with internet access, or point the NLTK_DATA "
            "environment variable at a folder that holds them (e.g. "
            "NLTK_DATA=../shared/nltk_data). kerastune_ft never downloads them."
        )


def _check_texts(texts, name="texts"):
    """Returns `texts` as a list of non-empty strings, or raises."""
    if isinstance(texts, (str, bytes)):
        raise TypeError(
            f"`{name}` must be a list of strings, not a single string. "
            f"Received: {name}={texts[:40]!r}. Wrap it in a list."
        )
    if hasattr(texts, "numpy"):
        texts = texts.numpy()
    try:
        items = list(texts)
    except TypeError as error:
        raise TypeError(
            f"`{name}` must be a list of strings. Received: {name} of type "
            f"{type(texts).__name__}."
        ) from error
    result = []
    for index, text in enumerate(items):
        if isinstance(text, bytes):
            text = text.decode("utf-8")
        if not isinstance(text, str):
            raise TypeError(
                f"`{name}` must contain only strings. Received an item of type "
                f"{type(text).__name__} at index {index}: {text!r}."
            )
        if not text.strip():
            raise ValueError(
                f"`{name}` contains an empty string at index {index}. Remove "
                "empty texts before augmenting: there is nothing to augment."
            )
        result.append(str(text))
    if not result:
        raise ValueError(f"`{name}` is empty. Pass at least one text.")
    return result


def _check_labels(labels, num_texts):
    if labels is None:
        raise ValueError("`labels` is required: augmented copies keep the labels.")
    labels = np.asarray(labels)
    if labels.ndim == 0 or len(labels) != num_texts:
        received = "a scalar" if labels.ndim == 0 else f"{len(labels)} labels"
        raise ValueError(
            f"`texts` and `labels` must have the same length. Received: "
            f"{num_texts} texts and {received}."
        )
    return labels


def _hash(obj):
    payload = json.dumps(obj, sort_keys=True, ensure_ascii=False, default=str)
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()


def default_cache_dir():
    """The on-disk cache: `$XDG_CACHE_HOME/kerastune_ft/text_augment`.

    Returns:
        A `pathlib.Path` (default `~/.cache/kerastune_ft/text_augment`).
    """
    root = os.environ.get("XDG_CACHE_HOME") or os.path.join(
        os.path.expanduser("~"), ".cache"
    )
    return pathlib.Path(root) / "kerastune_ft" / "text_augment"


def _example_seed(seed, index, copy):
    # Each (example, copy) gets its own seed, so results do not depend on how
    # the work is split across processes.
    return (int(seed) * 1_000_003 + index * 1_009 + copy) % (2**32)


class TextAugmenter:
    """Random text edits over nlpaug augmenters.

    Kinds: `"synonym"` (WordNet synonyms; needs NLTK data), `"swap"`,
    `"delete"`, `"crop"` (random word swap / deletion / contiguous crop),
    `"tfidf_insert"`, `"tfidf_substitute"` (words drawn by TF-IDF; call
    `fit(train_texts)` first, `augment_dataset` does it for you),
    `"keyboard"`, `"ocr"` (character noise), and the optional
    `"back_translation"` and `"contextual"`, which need local Hugging Face
    model directories and `transformers` + `torch` (never downloaded).

    Args:
        kinds: one kind or a sequence of kinds. Defaults to `("synonym",)`.
        p: fraction of words (or characters, for character noise) to change.
            Defaults to `0.1`.
        combine: `"sample"` applies one kind chosen at random per text;
            `"chain"` applies every kind in order. Defaults to `"sample"`.
        back_translation_models: `(to_model_dir, back_model_dir)`, local
            translation models (e.g. wmt19-en-de and wmt19-de-en) for
            `"back_translation"`. Defaults to `None`.
        contextual_model: a local masked-language-model directory (e.g. a
            BERT) for `"contextual"`. Defaults to `None`.

    Example:

    >>> import kerastune_ft as kft
    >>> augmenter = kft.augment.TextAugmenter(["swap", "delete"], p=0.3)
    >>> len(augmenter.augment("the battery lasts all day long", seed=1)) > 0
    True
    """

    def __init__(
        self,
        kinds=("synonym",),
        *,
        p=0.1,
        combine="sample",
        back_translation_models=None,
        contextual_model=None,
    ):
        if isinstance(kinds, str):
            kinds = (kinds,)
        kinds = tuple(kinds)
        if not kinds:
            raise ValueError(
                "`kinds` must name at least one augmentation. Valid kinds: "
                + ", ".join(KINDS)
                + "."
            )
        for kind in kinds:
            check_choice(
                "kinds", kind, KINDS, hint="Valid kinds: " + ", ".join(KINDS) + "."
            )
        check_number("p", p, low=0.0, high=1.0, low_inclusive=False)
        check_choice("combine", combine, _COMBINE)
        self.kinds = kinds
        self.p = float(p)
        self.combine = combine
        self.back_translation_models = back_translation_models
        self.contextual_model = contextual_model
        self.tfidf_dir = None
        self._tfidf_fingerprint = None
        self._augmenters = {}
        for kind in kinds:
            if kind in _NLTK_RESOURCES:
                _require_nltk_resources(kind)
            if kind in MODEL_KINDS:
                self._check_model_kind(kind)

    def _check_model_kind(self, kind):
        if kind == "back_translation":
            dirs = self.back_translation_models
            argument = "back_translation_models"
            usage = (
                "back_translation_models=(EN_TO_XX_DIR, XX_TO_EN_DIR), e.g. "
                "local copies of facebook/wmt19-en-de and facebook/wmt19-de-en"
            )
            ok = isinstance(dirs, (list, tuple)) and len(dirs) == 2
        else:
            dirs = self.contextual_model
            argument = "contextual_model"
            usage = "contextual_model=DIR, a local copy of e.g. bert-base-uncased"
            ok = isinstance(dirs, (str, os.PathLike))
            dirs = (dirs,) if ok else dirs
        if not ok or not all(os.path.isdir(str(d)) for d in dirs):
            raise MissingResourceError(
                f"The {kind!r} augmentation needs local model directories: pass "
                f"{usage}. Received: {argument}={getattr(self, argument)!r}. "
                "Models are never downloaded; fetch them on a machine with "
                "internet access (`huggingface-cli download NAME --local-dir DIR`)."
            )
        import importlib.util

        for package in ("transformers", "torch"):
            if importlib.util.find_spec(package) is None:
                raise MissingResourceError(
                    f"The {kind!r} augmentation needs the `{package}` package: "
                    f"`pip install {package}`."
                )

    # --- state -------------------------------------------------------------

    def get_config(self):
        """Settings that determine the output (used in cache keys).

        Returns:
            A JSON-serializable dict.
        """
        return {
            "kinds": list(self.kinds),
            "p": self.p,
            "combine": self.combine,
            "back_translation_models": (
                [str(d) for d in self.back_translation_models]
                if self.back_translation_models
                else None
            ),
            "contextual_model": (
                str(self.contextual_model) if self.contextual_model else None
            ),
            "tfidf": self._tfidf_fingerprint,
        }

    def __getstate__(self):
        # nlpaug objects are rebuilt lazily in each worker process.
        state = dict(self.__dict__)
        state["_augmenters"] = {}
        return state

    def __repr__(self):
        return (
            f"TextAugmenter(kinds={self.kinds!r}, p={self.p}, combine={self.combine!r})"
        )

    @property
    def needs_fit(self):
        """Whether a TF-IDF kind is used and `fit` was not called yet."""
        return any(k in _TFIDF_KINDS for k in self.kinds) and self.tfidf_dir is None

    def fit(self, texts, *, model_dir=None):
        """Fits the TF-IDF statistics the `tfidf_*` kinds draw words from.

        Args:
            texts: the training texts.
            model_dir: where to save the TF-IDF model files. Defaults to
                `None` (a folder under `default_cache_dir()` keyed by the
                texts).

        Returns:
            `self`.
        """
        texts = _check_texts(texts)
        if not any(k in _TFIDF_KINDS for k in self.kinds):
            return self
        import nlpaug.model.word_stats as nmws

        fingerprint = _hash(texts)[:16]
        if model_dir is None:
            model_dir = default_cache_dir() / "tfidf" / fingerprint
        model_dir = pathlib.Path(model_dir)
        files = [model_dir / nmws.TfIdf.WORD_2_IDF_FILE_NAME]
        files.append(model_dir / nmws.TfIdf.WORD_2_TFIDF_FILE_NAME)
        if not all(f.is_file() for f in files):
            model_dir.mkdir(parents=True, exist_ok=True)
            model = nmws.TfIdf()
            model.train([_WORD.findall(t.lower()) or ["_"] for t in texts])
            model.save(str(model_dir))
        self.tfidf_dir = str(model_dir)
        self._tfidf_fingerprint = fingerprint
        self._augmenters = {}
        return self

    # --- augmentation ------------------------------------------------------

    def _augmenter(self, kind):
        if kind in self._augmenters:
            return self._augmenters[kind]
        import nlpaug.augmenter.char as nac
        import nlpaug.augmenter.word as naw

        p = self.p
        if kind == "synonym":
            _require_nltk_resources(kind)
            aug = naw.SynonymAug(aug_src="wordnet", aug_p=p)
        elif kind in ("swap", "delete", "crop"):
            aug = naw.RandomWordAug(action=kind, aug_p=p)
        elif kind in _TFIDF_KINDS:
            if self.tfidf_dir is None:
                raise ValueError(
                    f"The {kind!r} augmentation draws words by TF-IDF: call "
                    "`augmenter.fit(train_texts)` first (augment_dataset does it)."
                )
            import nlpaug.model.word_stats as nmws

            aug = naw.TfIdfAug(
                model_path=self.tfidf_dir, action=kind.split("_")[1], aug_p=p
            )
            # nlpaug caches one TF-IDF model per process; use ours.
            model = nmws.TfIdf()
            model.read(self.tfidf_dir)
            aug.model = model
        elif kind == "keyboard":
            aug = nac.KeyboardAug(aug_char_p=p, aug_word_p=p)
        elif kind == "ocr":
            aug = nac.OcrAug(aug_char_p=p, aug_word_p=p)
        elif kind == "back_translation":
            self._check_model_kind(kind)
            src, back = (str(d) for d in self.back_translation_models)
            aug = naw.BackTranslationAug(from_model_name=src, to_model_name=back)
        else:  # contextual
            self._check_model_kind(kind)
            aug = naw.ContextualWordEmbsAug(
                model_path=str(self.contextual_model), action="substitute", aug_p=p
            )
        self._augmenters[kind] = aug
        return aug

    def augment(self, text, *, seed=None):
        """Returns one augmented variant of `text`.

        Args:
            text: a non-empty string.
            seed: seeds Python's and NumPy's generators (nlpaug uses both)
                for a reproducible variant. Defaults to `None`.

        Returns:
            A string (the input itself when no edit applied, e.g. no synonym).
        """
        (text,) = _check_texts([text], name="text")
        if seed is not None:
            random.seed(seed)
            np.random.seed(seed % (2**32))
        if self.combine == "sample":
            kinds = [self.kinds[random.randrange(len(self.kinds))]]
        else:
            kinds = self.kinds
        for kind in kinds:
            result = self._augmenter(kind).augment(text)
            if isinstance(result, list):
                result = result[0] if result else text
            # Never produce an empty text (e.g. deleting the only word).
            text = result if result and result.strip() else text
        return text


# --- materialized augmentation in worker processes ------------------------

_WORKER_AUGMENTER = None


def _init_worker(augmenter):
    global _WORKER_AUGMENTER
    _WORKER_AUGMENTER = augmenter


def _augment_chunk(items, copies, seed, augmenter=None):
    """Runs in a worker process: pure Python + nlpaug, never TensorFlow."""
    augmenter = augmenter or _WORKER_AUGMENTER
    return [
        [
            augmenter.augment(text, seed=_example_seed(seed, index, c))
            for c in range(copies)
        ]
        for index, text in items
    ]


def _start_method():
    # fork starts workers instantly and does not re-import TensorFlow (the
    # workers only run nlpaug). spawn is the fallback where fork is missing.
    methods = multiprocessing.get_all_start_methods()
    return "fork" if "fork" in methods else "spawn"


def augment_texts(
    texts,
    labels,
    *,
    copies=4,
    augmenter=None,
    split="train",
    cache_dir=None,
    seed=0,
    num_workers=None,
    verbose=0,
):
    """Generates `copies` variants per text once (all cores) and caches them.

    Args:
        texts: training texts (non-empty strings).
        labels: one label (or multi-hot row) per text.
        copies: variants per text. Defaults to `4`.
        augmenter: a `TextAugmenter`. Defaults to `None` (synonyms).
        split: must be `"train"`: validation and test data are never
            augmented. Defaults to `"train"`.
        cache_dir: cache folder, or `False` to disable the cache. Defaults to
            `None` (`default_cache_dir()`).
        seed: seed of the variants. Defaults to `0`.
        num_workers: worker processes. Defaults to `None` (all CPU cores);
            `1` runs in this process.
        verbose: 1 shows a progress bar. Defaults to `0`.

    Returns:
        A tuple `(texts, labels)` of NumPy arrays: the originals followed by
        their variants (`len(texts) * (copies + 1)` rows), labels repeated.

    Example:

    >>> import kerastune_ft as kft
    >>> x, y = kft.augment.text.augment_texts(
    ...     ["good phone", "bad battery"], [1, 0], copies=2,
    ...     augmenter=kft.augment.TextAugmenter("swap"), cache_dir=False, num_workers=1)
    >>> len(x), y.tolist()
    (6, [1, 0, 1, 0, 1, 0])
    """
    check_choice(
        "split",
        split,
        ("train",),
        hint="Validation and test data are never augmented: evaluate on the "
        "original texts.",
    )
    texts = _check_texts(texts)
    labels = _check_labels(labels, len(texts))
    check_number("copies", copies, low=1, integer=True)
    check_number("seed", seed, integer=True)
    check_number("verbose", verbose, low=0, integer=True)
    if num_workers is not None:
        check_number("num_workers", num_workers, low=1, integer=True)
    if augmenter is None:
        augmenter = TextAugmenter()
    if not isinstance(augmenter, TextAugmenter):
        raise TypeError(
            "`augmenter` must be a kft.augment.TextAugmenter. Received: "
            f"augmenter={augmenter!r}."
        )
    if augmenter.needs_fit:
        augmenter.fit(texts)

    key = _hash(
        {
            "version": _CACHE_VERSION,
            "texts": texts,
            "copies": int(copies),
            "seed": int(seed),
            "augmenter": augmenter.get_config(),
        }
    )
    cache_file = None
    if cache_dir is not False:
        cache_file = pathlib.Path(cache_dir or default_cache_dir()) / f"{key}.json"
        if cache_file.is_file():
            variants = json.loads(cache_file.read_text(encoding="utf-8"))["variants"]
            return _assemble(texts, labels, variants, copies)

    variants = _generate(texts, copies, augmenter, seed, num_workers, verbose)
    if cache_file is not None:
        cache_file.parent.mkdir(parents=True, exist_ok=True)
        # Write then rename, so a concurrent reader never sees half a file.
        handle, tmp = tempfile.mkstemp(dir=cache_file.parent, suffix=".tmp")
        with os.fdopen(handle, "w", encoding="utf-8") as f:
            json.dump({"variants": variants}, f, ensure_ascii=False)
        os.replace(tmp, cache_file)
    return _assemble(texts, labels, variants, copies)


def _generate(texts, copies, augmenter, seed, num_workers, verbose):
    items = list(enumerate(texts))
    workers = num_workers or os.cpu_count() or 1
    workers = min(workers, len(items))
    progress = None
    if verbose:
        import keras

        progress = keras.utils.Progbar(len(items), unit_name="text")
    if workers == 1:
        variants = []
        for start in range(0, len(items), 64):
            chunk = items[start : start + 64]
            variants.extend(_augment_chunk(chunk, copies, seed, augmenter))
            if progress is not None:
                progress.add(len(chunk))
        return variants
    chunk_size = max(1, min(256, len(items) // (workers * 4) or 1))
    chunks = [items[i : i + chunk_size] for i in range(0, len(items), chunk_size)]
    context = multiprocessing.get_context(_start_method())
    results = [None] * len(chunks)
    with concurrent.futures.ProcessPoolExecutor(
        max_workers=workers,
        mp_context=context,
        initializer=_init_worker,
        initargs=(augmenter,),
    ) as pool:
        futures = {
            pool.submit(_augment_chunk, chunk, copies, seed): i
            for i, chunk in enumerate(chunks)
        }
        for future in concurrent.futures.as_completed(futures):
            i = futures[future]
            results[i] = future.result()
            if progress is not None:
                progress.add(len(chunks[i]))
    return [row for chunk in results for row in chunk]


def _assemble(texts, labels, variants, copies):
    all_texts = list(texts)
    all_labels = [labels]
    for c in range(copies):
        all_texts.extend(row[c] for row in variants)
        all_labels.append(labels)
    return np.asarray(all_texts, dtype=object), np.concatenate(all_labels, axis=0)


def augment_dataset(
    texts,
    labels,
    *,
    copies=4,
    augmenter=None,
    split="train",
    batch_size=32,
    cache_dir=None,
    seed=0,
    num_workers=None,
    on_the_fly=False,
    verbose=0,
):
    """A shuffled training dataset of originals and augmented variants.

    By default the variants are materialized: generated once on all CPU
    cores, cached on disk (keyed by the texts, `copies`, `seed` and the
    augmenter settings) and mixed with the originals. With
    `on_the_fly=True`, each batch is instead augmented during training
    through `tf.numpy_function` (each text with probability
    `copies / (copies + 1)`); that holds the GIL, uses one core and is much
    slower -- it exists for comparison (`benchmarks/text_augment_speed.py`).

    Args:
        texts: training texts (non-empty strings).
        labels: one label (or multi-hot row) per text.
        copies: variants per text. Defaults to `4`.
        augmenter: a `kft.augment.TextAugmenter`. Defaults to `None` (WordNet
            synonyms).
        split: must be `"train"`: validation and test data are never
            augmented. Defaults to `"train"`.
        batch_size: batch size. Defaults to `32`.
        cache_dir: cache folder, or `False` to disable the cache.
            Defaults to `None` (`~/.cache/kerastune_ft/text_augment`).
        seed: seed of the variants and of the shuffling. Defaults to `0`.
        num_workers: worker processes. Defaults to `None` (all CPU cores).
        on_the_fly: augment per batch during training instead (slower).
            Defaults to `False`.
        verbose: 1 shows a progress bar while generating. Defaults to `0`.

    Returns:
        A batched `tf.data.Dataset` of `(text, label)` that reshuffles each
        epoch.

    Example:

    >>> import kerastune_ft as kft
    >>> ds = kft.augment.augment_dataset(
    ...     ["good phone", "bad battery"], [1, 0], copies=2,
    ...     augmenter=kft.augment.TextAugmenter("delete"), cache_dir=False,
    ...     num_workers=1)
    >>> sum(int(y.shape[0]) for _, y in ds)
    6
    """
    check_number("batch_size", batch_size, low=1, integer=True)
    tf = import_tensorflow("kft.augment.augment_dataset (tf.data)")

    if not on_the_fly:
        all_texts, all_labels = augment_texts(
            texts,
            labels,
            copies=copies,
            augmenter=augmenter,
            split=split,
            cache_dir=cache_dir,
            seed=seed,
            num_workers=num_workers,
            verbose=verbose,
        )
        dataset = tf.data.Dataset.from_tensor_slices(
            (all_texts.astype(str), all_labels)
        )
        dataset = dataset.shuffle(
            len(all_texts), seed=seed, reshuffle_each_iteration=True
        )
        return dataset.batch(batch_size).prefetch(tf.data.AUTOTUNE)

    check_choice(
        "split", split, ("train",), hint="Validation and test data are never augmented."
    )
    texts = _check_texts(texts)
    labels = _check_labels(labels, len(texts))
    check_number("copies", copies, low=1, integer=True)
    augmenter = augmenter if augmenter is not None else TextAugmenter()
    if augmenter.needs_fit:
        augmenter.fit(texts)
    rng = np.random.default_rng(seed)
    keep = 1.0 / (copies + 1)

    def augment_batch(batch):
        out = []
        for raw in batch:
            text = raw.decode("utf-8")
            if rng.random() >= keep:
                text = augmenter.augment(text, seed=int(rng.integers(2**31)))
            out.append(text.encode("utf-8"))
        return np.asarray(out, dtype=object)

    def augment_map(x, y):
        x_aug = tf.numpy_function(augment_batch, [x], tf.string, stateful=True)
        x_aug.set_shape(x.shape)
        return x_aug, y

    dataset = tf.data.Dataset.from_tensor_slices((np.asarray(texts), labels))
    dataset = dataset.shuffle(len(texts), seed=seed, reshuffle_each_iteration=True)
    return dataset.batch(batch_size).map(augment_map).prefetch(tf.data.AUTOTUNE)
