"""Class-folder trees shared by the image and text loaders."""

import errno
import os

from kerastune_ft.data._common import listed, warn_skipped
from kerastune_ft.data._result import SPLITS

# Folder names that mark a `root/{train,val,test}/<class>/*` layout.
SPLIT_FOLDERS = {"train": "train", "val": "val", "validation": "val", "test": "test"}
EXAMPLE_FILE = {"images": "*.jpg", "texts": "*.txt"}


def scan_class_folders(root, *, kind, skipped=None):
    """Lists `{split: [(path, class_name), ...]}` under a class-folder tree.

    Symlinks to files are followed (the CLI links subsets); symlinked folders
    are followed unless they point back into the dataset or above it (a loop,
    or the same files counted twice), which raises a `ValueError`. Broken
    links are skipped and listed in one `KerasTuneFTWarning`.

    Args:
        root: `root/<class>/*` or `root/{train,val,test}/<class>/*`
            (`validation/` also accepted). Files may sit in nested folders
            inside a class folder; hidden files and folders are ignored.
        kind: `"images"` or `"texts"`, for messages.
        skipped: optional list that receives `(link, reason)` for each broken
            symlink skipped.

    Returns:
        `{split: [(pathlib.Path, class_name), ...]}`, files sorted per class.
    """
    _check_root(root, kind)
    walker = _Walker(root)
    layout = _split_layout(root, walker.entries(root)[0])
    files = {}
    for split in SPLITS:
        if split in layout:
            files[split] = _scan_split(layout[split], walker, kind)
    warn_skipped(walker.broken, "broken symlink(s)", "Fix or remove the links.")
    if skipped is not None:
        skipped.extend(walker.broken)
    return files


def _check_root(root, kind):
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


def _split_layout(root, subdirs):
    """`{split: folder}`: the train/val/test folders, or the root as train."""
    names = {d.name for d in subdirs}
    if not names or not names <= set(SPLIT_FOLDERS):
        return {"train": root}
    if "train" not in names:
        raise ValueError(
            f"The folder {str(root)!r} has split folders {sorted(names)} but "
            "no 'train/'. Add train/<class>/ folders."
        )
    return {SPLIT_FOLDERS[d.name]: d for d in subdirs}


def _scan_split(folder, walker, kind):
    class_dirs, stray = walker.entries(folder)
    if not class_dirs:
        raise ValueError(
            f"The folder {str(folder)!r} has no class subfolders"
            + (
                f" (it holds {len(stray)} file(s) directly: "
                f"{listed([p.name for p in stray], 3)})"
                if stray
                else " (it is empty)"
            )
            + f". Put the {kind} in one subfolder per class: "
            f"root/<class>/{EXAMPLE_FILE[kind]}."
        )
    entries = []
    for class_dir in class_dirs:
        in_class = sorted(walker.files(class_dir))
        if not in_class:
            raise ValueError(
                f"The class folder {str(class_dir)!r} has no files. Add "
                f"{kind} to it or remove it."
            )
        entries.extend((path, class_dir.name) for path in in_class)
    return entries


class _Walker:
    """Lists visible folders and files, checking every symlink on the way."""

    def __init__(self, root):
        self.root = root
        self.real_root = root.resolve()
        self.broken = []  # (link, reason) of dangling links

    def entries(self, folder, chain=()):
        """Sorted visible `(folders, files)` directly inside `folder`.

        `chain` holds the resolved folders walked through to get here, so a
        link back to one of them (a loop through outside folders) is caught.
        """
        dirs, files = [], []
        for path in sorted(folder.iterdir()):
            if path.name.startswith("."):
                continue
            if path.is_symlink():
                kind = self._link_kind(path, chain)
            else:  # sockets and fifos are neither and are left out
                kind = "dir" if path.is_dir() else "file" if path.is_file() else None
            if kind == "dir":
                dirs.append(path)
            elif kind == "file":
                files.append(path)
        return dirs, files

    def files(self, folder, chain=()):
        """Every visible file under `folder`, nested folders included."""
        chain = chain + (folder.resolve(),)
        dirs, files = self.entries(folder, chain)
        for sub in dirs:
            files.extend(self.files(sub, chain))
        return files

    def _link_kind(self, link, chain):
        """Returns "dir", "file", or None (broken link); raises on a loop."""
        try:
            link.stat()
        except FileNotFoundError:
            broken = (str(link), f"target {os.readlink(link)!r} does not exist")
            if broken not in self.broken:  # the root is listed twice
                self.broken.append(broken)
            return None
        except OSError as err:
            if err.errno != errno.ELOOP:
                raise
            raise ValueError(
                f"The symlink {str(link)!r} is a loop: it resolves back to "
                f"itself ({os.readlink(link)!r}). Remove it or point it at a "
                "real file or folder."
            ) from None
        if link.is_dir():
            self._check_folder_link(link, link.resolve(), chain)
            return "dir"
        return "file" if link.is_file() else None

    def _check_folder_link(self, link, target, chain):
        where = f"The symlink {str(link)!r} points to {str(target)!r}"
        if target == self.real_root or self.real_root.is_relative_to(target):
            which = (
                "the dataset folder itself"
                if target == self.real_root
                else "a folder above the dataset folder"
            )
            raise ValueError(
                f"{where}, which is {which} ({str(self.root)!r}): following "
                "it would loop and load every file again as a fake class. "
                "Remove the link."
            )
        if target.is_relative_to(self.real_root):
            raise ValueError(
                f"{where}, a folder inside the dataset ({str(self.root)!r}): "
                "its files would be counted twice, in two classes or splits. "
                "Remove the link, or copy the files if they truly belong to both."
            )
        if any(folder.is_relative_to(target) for folder in chain):
            raise ValueError(
                f"{where}, a folder that contains the link itself: a symlink "
                "loop. Remove the link."
            )
