"""The bad-input table's size: at least 80 hostile inputs, in every area."""

import importlib.util
import pathlib

TESTS = pathlib.Path(__file__).resolve().parent
TABLES = {
    "data loaders": "data/test_data_bad_input.py",
    "builders, weights, export, model files": "builders/test_bad_inputs_models.py",
    "fine_tune": "training/test_bad_inputs_training.py",
    "command line": "cli/test_bad_inputs_cli.py",
}


def _rows(relative):
    # The tables live beside the code they test; load each by path (the test
    # folders are not packages).
    path = TESTS / relative
    spec = importlib.util.spec_from_file_location(f"_table_{path.stem}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.ROWS


GROUPS = {name: _rows(relative) for name, relative in TABLES.items()}


def test_the_table_has_at_least_80_rows_across_all_areas():
    sizes = {name: len(rows) for name, rows in GROUPS.items()}
    print(sizes, sum(sizes.values()))
    assert sum(sizes.values()) >= 80
    assert all(size >= 10 for size in sizes.values()), sizes


def test_row_ids_are_unique():
    ids = [row.id for rows in GROUPS.values() for row in rows]
    assert len(ids) == len(set(ids))
