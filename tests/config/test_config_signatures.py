"""Every config key is a keyword argument of the function its section feeds.

A config restates no default and renames no argument: `kft.run` passes the
keys that are set, unchanged. This test pins the key names to the library's
signatures, so that a renamed argument cannot leave a stale config key.
"""

import dataclasses
import importlib
import inspect

import pytest

from kerastune_ft.config import RunConfig
from kerastune_ft.config.run_config import SECTIONS
from kerastune_ft.config.sections import FEEDS, ONLY_FOR, RUN_FIELDS


def _function(target):
    module, name = target.split(":")
    return getattr(importlib.import_module(module), name)


def _cases():
    for section, by_task in FEEDS.items():
        for task, target in by_task.items():
            yield pytest.param(section, task, target, id=f"{section}-{task}")


@pytest.mark.parametrize("section, task, target", list(_cases()))
def test_every_key_is_a_parameter_of_the_function_it_feeds(section, task, target):
    parameters = inspect.signature(_function(target)).parameters
    other = ONLY_FOR["text" if task == "image" else "image"]
    own = RUN_FIELDS.get(section, ())
    for field in dataclasses.fields(SECTIONS[section]):
        key = f"{section}.{field.name}"
        if key in other or field.name in own:
            continue
        assert field.name in parameters, f"{key} is not a parameter of {target}"
        if field.name not in ("source", "backbone"):
            assert field.default is None, f"{key} restates a default"


@pytest.mark.parametrize("task", ["image", "text"])
def test_keys_for_one_task_only_are_not_parameters_of_the_other(task):
    """`ONLY_FOR` is right: the other task's function really lacks the key."""
    for key in ONLY_FOR[task]:
        section, name = key.split(".")
        other = "text" if task == "image" else "image"
        target = FEEDS[section][other]
        assert name not in inspect.signature(_function(target)).parameters, key


def test_the_run_fields_are_the_only_ones_fed_to_no_function():
    assert set(RUN_FIELDS) | set(FEEDS) == set(SECTIONS)
    run_keys = {f.name for f in dataclasses.fields(RunConfig)} - set(SECTIONS)
    assert run_keys == {"task", "name", "seed"}
