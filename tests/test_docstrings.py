"""Every `>>>` example in a docstring runs (examples that drift mislead users).

None is skipped: `+SKIP` is not allowed (`test_no_skipped_examples`).
"""

import doctest
import importlib
import pathlib
import pkgutil

import pytest
from conftest import require_shared

import kerastune_ft

MODULES = sorted(
    info.name
    for info in pkgutil.walk_packages(kerastune_ft.__path__, prefix="kerastune_ft.")
)


# Examples that read the real offline assets (KFT_SHARED, default ../shared).
NEEDS_SHARED = {"kerastune_ft.backbones.image"}


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples_run(name):
    if name in NEEDS_SHARED:
        require_shared()
    module = importlib.import_module(name)
    finder = doctest.DocTestFinder(exclude_empty=True)
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS)
    for test in finder.find(module, name):
        if test.examples:
            runner.run(test)
    result = runner.summarize(verbose=False)
    assert result.failed == 0, f"{result.failed} docstring example(s) failed in {name}"


def test_no_skipped_examples():
    """An example marked `+SKIP` proves nothing; make it runnable instead."""
    root = pathlib.Path(kerastune_ft.__file__).parent
    skipped = [
        str(path.relative_to(root))
        for path in root.rglob("*.py")
        if "doctest: +SKIP" in path.read_text(encoding="utf-8")
    ]
    assert not skipped, skipped
