"""The sweep lists of experiments.grid: folders expand, shared cells run once under their source."""
import pytest

from experiments.grid import experiments_under, grid_lines, main, run_source


def test_a_folder_expands_to_its_experiment_files_and_a_file_to_itself():
    cells = experiments_under("table5_smollm2/samsum")
    assert "table5_smollm2/samsum/v_r8" in cells and len(cells) == 7
    assert experiments_under("table5_smollm2/samsum/v_r8") == ["table5_smollm2/samsum/v_r8"]


def test_a_name_that_is_no_experiment_is_an_error_naming_it(capsys):
    with pytest.raises(SystemExit):
        main(["table5_smollm2/no_such_task"])
    assert "'table5_smollm2/no_such_task' names no experiment file" in capsys.readouterr().err


def test_a_shared_cell_runs_under_its_source_one_hop_and_mutual_pairs_once():
    shared = {"t5/q": "t6/q", "t8/ft": "t4/lora", "t4/lora": "t6/qv", "t6/qv": "t4/lora"}
    assert run_source("t5/q", shared) == "t6/q"
    assert run_source("t6/q", shared) == "t6/q"
    assert run_source("t8/ft", shared) == "t4/lora"        # Table 8 reads t4/lora's runs only
    assert run_source("t4/lora", shared) == run_source("t6/qv", shared) == "t4/lora"


def test_grid_lines_list_each_configuration_once_per_seed():
    lines = grid_lines(["table5_smollm2/samsum", "table6_smollm2/samsum/q_r8"], [1, 2])
    # Table 5's Wq r=8 reads Table 6's runs (table5.yaml shared_runs): one run fills both
    assert "table6_smollm2/samsum/q_r8/seed2 experiment=table6_smollm2/samsum/q_r8 seed=2 logger=none" in lines
    assert not any(line.startswith("table5_smollm2/samsum/q_r8/") for line in lines)
    assert len(lines) == len(set(lines)) == 14
