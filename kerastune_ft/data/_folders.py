"""Class-folder trees shared by the image and text loaders."""

import os

from kerastune_ft.data._common import listed
from kerastune_ft.data._result import SPLITS

# Folder names that mark a `root/{train,val,test}/<class>/*` layout.
SPLIT_FOLDERS = {"train": "train", "val": "val", "validation": "val", "test": "test"}
EXAMPLE_FILE = {"images": "*.jpg", "texts": "*.txt"}


def scan_class_folders(root, *, kind):
    """Lists `{split: [(path, class_name), ...]}` under a class-folder tree.

    Args:
        root: `root/<class>/*` or `root/{train,val,test}/<class>/*`
            (`validation/` also accepted). Files may sit in nested folders
            inside a class folder; hidden files and folders are ignored.
        kind: `"images"` or `"texts"`, for messages.
    """
    if not root.exists():
        raise ValueError(
            f"`source` folder does not exist. Received: source={str(root)!r}. "
            "Check the path (relative paths start from the current directory: "
            f"{os.getcwd()})."
        )
    if not root.is_dir():
        raise ValueError(
            f"`load_{kind}` needs a folder with one subfolder per class. "
            f"Received: source={str(root)!r}, which is a file."
        )
    subdirs = visible_dirs(root)
    names = {d.name for d in subdirs}
    if names and names <= set(SPLIT_FOLDERS):
        if "train" not in names:
            raise ValueError(
                f"The folder {str(root)!r} has split folders {sorted(names)} but "
                "no 'train/'. Add train/<class>/ folders."
            )
        layout = {SPLIT_FOLDERS[d.name]: d for d in subdirs}
    else:
        layout = {"train": root}
    files = {}
    for split in SPLITS:
        if split not in layout:
            continue
        class_dirs = visible_dirs(layout[split])
        if not class_dirs:
            stray = [p.name for p in visible_files(layout[split])]
            raise ValueError(
                f"The folder {str(layout[split])!r} has no class subfolders"
                + (
                    f" (it holds {len(stray)} file(s) directly: {listed(stray, 3)})"
                    if stray
                    else " (it is empty)"
                )
                + f". Put the {kind} in one subfolder per class: "
                f"root/<class>/{EXAMPLE_FILE[kind]}."
            )
        entries = []
        for class_dir in class_dirs:
            in_class = sorted(visible_files(class_dir, recursive=True))
            if not in_class:
                raise ValueError(
                    f"The class folder {str(class_dir)!r} has no files. Add "
                    f"{kind} to it or remove it."
                )
            entries.extend((path, class_dir.name) for path in in_class)
        files[split] = entries
    return files


def visible_dirs(folder):
    return sorted(
        p for p in folder.iterdir() if p.is_dir() and not p.name.startswith(".")
    )


def visible_files(folder, recursive=False):
    paths = folder.rglob("*") if recursive else folder.iterdir()
    return [
        p
        for p in paths
        if p.is_file()
        and not any(part.startswith(".") for part in p.relative_to(folder).parts)
    ]
