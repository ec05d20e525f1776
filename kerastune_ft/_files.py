"""Folders kerastune_ft writes into: only empty ones, or ones it made.

A command that writes a folder (a training run, an evaluation) first claims
it: the folder must be new, empty, or carry the marker file a command of the
same kind left there. The marker says which kind of folder it is, so a later
command knows that what is inside was written by kerastune_ft and may be
replaced, and a folder holding anything else is refused, never cleared.
"""

import json
import os
import pathlib

MARKER = ".kerastune_ft.json"
# Shown in a refusal: the first few entries of a folder that is not ours.
_SHOWN = 5


def write_text_atomic(path, text):
    """Writes `text` to `path` through a temporary file and `os.replace`.

    A crash leaves the old file or the new one, never half of one.
    """
    path = pathlib.Path(path)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)
    return path


def folder_kind(folder):
    """The kind a kerastune_ft command recorded in `folder`, or `None`."""
    marker = pathlib.Path(folder) / MARKER
    if not marker.is_file():
        return None
    try:
        return json.loads(marker.read_text(encoding="utf-8")).get("kind")
    except (OSError, ValueError, AttributeError):
        return None


def _listing(folder):
    names = sorted(p.name + ("/" if p.is_dir() else "") for p in folder.iterdir())
    shown = ", ".join(names[:_SHOWN])
    more = len(names) - _SHOWN
    return shown + (f", ... ({more} more)" if more > 0 else "")


def check_writable_folder(folder, kind, argument):
    """Refuses a folder that is a file, or holds files another party wrote.

    Args:
        folder: the folder a command will write into.
        kind: what the command writes (`"run"`, `"evaluation"`).
        argument: the option the user gave it with, for the message.

    Returns:
        The folder as a `pathlib.Path`.

    Raises:
        ValueError: `folder` is a file, or it is not empty and was not
            written by a kerastune_ft command of the same `kind`.
    """
    folder = pathlib.Path(folder)
    if folder.exists() and not folder.is_dir():
        raise ValueError(
            f"`{argument}` must be a folder, but {str(folder)!r} is a file. Choose "
            "a new or empty folder."
        )
    if not folder.is_dir() or not any(folder.iterdir()):
        return folder
    if folder_kind(folder) == kind:
        return folder
    raise ValueError(
        f"`{argument}` is not empty and was not written by kerastune_ft: "
        f"{str(folder)!r} holds {_listing(folder)}. kerastune_ft never deletes or "
        f"overwrites files it did not write: choose a new or empty folder for the "
        f"{kind}."
    )


def claim_folder(folder, kind):
    """Creates `folder` (if needed) and marks it as a kerastune_ft `kind` folder.

    Call `check_writable_folder` first.
    """
    folder = pathlib.Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    if folder_kind(folder) != kind:
        write_text_atomic(folder / MARKER, json.dumps({"kind": kind}) + "\n")
    return folder
