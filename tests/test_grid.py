"""The sweep lists of experiments.grid: folders expand, a file naming another's configuration
(`run.same_as`) runs once, as that owner."""
import pytest

from experiments.grid import experiments_under, grid_lines, main


def test_a_folder_expands_to_its_experiment_files_and_a_file_to_itself():
    cells = experiments_under("table5_smollm2/samsum")
    assert "table5_smollm2/samsum/v_r8" in cells and len(cells) == 7
    assert experiments_under("table5_smollm2/samsum/v_r8") == ["table5_smollm2/samsum/v_r8"]


def test_a_name_that_is_no_experiment_is_an_error_naming_it(capsys):
    with pytest.raises(SystemExit):
        main(["table5_smollm2/no_such_task"])
    assert "'table5_smollm2/no_such_task' names no experiment file" in capsys.readouterr().err


def test_grid_lines_list_each_configuration_once_per_seed():
    lines = grid_lines(["table5_smollm2/samsum", "table6_smollm2/samsum/q_r8"], [1, 2])
    # Table 5's Wq r=8 file says `same_as: table6_smollm2/samsum/q_r8`: one run fills both
    assert "table6_smollm2/samsum/q_r8/seed2 experiment=table6_smollm2/samsum/q_r8 seed=2 logger=none" in lines
    assert not any(line.startswith("table5_smollm2/samsum/q_r8/") for line in lines)
    assert len(lines) == len(set(lines)) == 14


def test_every_file_of_a_shared_configuration_runs_as_its_owner():
    """Tables 4, 6, 8 and 15 all hold RTE's LoRA r_q=r_v=8: one configuration, run once."""
    lines = grid_lines(["table4_smollm2/rte_gen/lora_qv_r8", "table6_smollm2/rte_gen/qv_r8",
                        "table8_smollm2/rte_gen/lora", "table15_smollm2/rte_gen/lora_qv_r8"], [1])
    assert lines == ["table4_smollm2/rte_gen/lora_qv_r8/seed1 "
                     "experiment=table4_smollm2/rte_gen/lora_qv_r8 seed=1 logger=none"]
