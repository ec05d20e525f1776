"""The bad-input table's size: at least 80 hostile inputs, in every area."""

import test_bad_inputs_cli
import test_bad_inputs_models
import test_bad_inputs_training
import test_data_bad_input

GROUPS = {
    "data loaders": test_data_bad_input.ROWS,
    "builders, weights, export, model files": test_bad_inputs_models.ROWS,
    "fine_tune": test_bad_inputs_training.ROWS,
    "command line": test_bad_inputs_cli.ROWS,
}


def test_the_table_has_at_least_80_rows_across_all_areas():
    sizes = {name: len(rows) for name, rows in GROUPS.items()}
    print(sizes, sum(sizes.values()))
    assert sum(sizes.values()) >= 80
    assert all(size >= 10 for size in sizes.values()), sizes


def test_row_ids_are_unique():
    ids = [row.id for rows in GROUPS.values() for row in rows]
    assert len(ids) == len(set(ids))
