"""Every `>>>` example in a docstring runs (examples that drift mislead users)."""

import doctest
import importlib
import pkgutil

import pytest

import kerastune_ft

MODULES = sorted(
    info.name
    for info in pkgutil.walk_packages(kerastune_ft.__path__, prefix="kerastune_ft.")
)


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples_run(name):
    module = importlib.import_module(name)
    finder = doctest.DocTestFinder(exclude_empty=True)
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS)
    for test in finder.find(module, name):
        if test.examples:
            runner.run(test)
    result = runner.summarize(verbose=False)
    assert result.failed == 0, f"{result.failed} docstring example(s) failed in {name}"
