"""Tests of the paper's experiment presets and the table runner."""
import os

import pytest

import symbols
from experiments import presets, runner
from experiments.presets import FAIL, TABLES

ALL = [p for rows in TABLES.values() for p in rows]


def test_presets_cover_the_papers_tables():
    assert len(presets.TABLE1) == 15 and len(presets.TABLE2) == 10 and len(presets.TABLE3) == 8
    names = [p.name for p in ALL]
    assert all(len(set(p.name for p in rows)) == len(rows) for rows in TABLES.values())
    by_name = {p.name: p for p in presets.TABLE2}
    assert by_name["full_preact_164"].paper_error == 5.46
    assert by_name["bn_after_add_110"].paper_error == 8.17
    table1 = {p.name: p for p in presets.TABLE1}
    assert table1["exclusive_gating_bg6"].shortcut_params == {"gate_bias": -6.0}
    assert table1["constant_scaling_shortcut_only"].paper_error == FAIL
    assert "cifar100_full_preact_1001" in names


@pytest.mark.parametrize("preset", ALL, ids=[f"{p.dataset}-{p.name}" for p in ALL])
def test_every_preset_builds(preset):
    classes = 100 if preset.dataset == "cifar100" else 10
    net = symbols.get_symbol(classes, preset.num_layers, (3, 32, 32), unit=preset.unit,
                             shortcut=preset.shortcut, **preset.shortcut_params)
    assert symbols.output_shape(net, (3, 32, 32)) == (1, classes)


def test_unknown_tables_and_rows_fail_clearly():
    with pytest.raises(ValueError, match="valid: table1, table2, table3"):
        presets.select_rows("table4")
    with pytest.raises(ValueError, match="has no row nope; its rows: original_110"):
        presets.select_rows("table2", ["nope"])


def test_budget_schedule_keeps_the_recipes_shape():
    assert runner.schedule() == (64000, (32000, 48000), 400)
    assert runner.schedule(640) == (640, (320, 480), 4)
    assert runner.budget_depth(110) == 20 and runner.budget_depth(1001) == 29
