"""The job interface (issue #24): every task config names its job and scorer, every job class
implements `Job`, and a config naming neither is refused before any work."""
from __future__ import annotations

import inspect

import pytest
from hydra import compose, initialize_config_dir

from experiments.classification_job import ClassificationJob
from experiments.epoch_generation_job import EpochGenerationJob
from experiments.generation_job import GenerationJob
from experiments.job import Job, job_class, job_num_labels
from experiments.metrics import MetricInputError
from experiments.metrics.registry import SCORERS, scorer
from experiments.paths import CONF_DIR
from experiments.run_checks import RunConfigError, check_run_config

TASKS = sorted(p.stem for p in (CONF_DIR / "task").glob("*.yaml"))
EXPECTED = {"e2e": GenerationJob, "webnlg": GenerationJob, "dart": GenerationJob,
            "samsum": EpochGenerationJob, "wikisql": EpochGenerationJob,
            "mnli_gen": EpochGenerationJob, "rte_gen": EpochGenerationJob,
            "sst2_gen": EpochGenerationJob}


def compose_cfg(*overrides: str):
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        return compose(config_name="config", overrides=list(overrides))


def protocol_methods() -> set[str]:
    return {n for n, v in vars(Job).items() if not n.startswith("_")
            and (inspect.isfunction(v) or isinstance(v, classmethod))}


def test_protocol_names_the_stages_the_pipeline_calls():
    assert protocol_methods() == {"num_labels", "score_decoded", "collate", "data_summary",
                                  "on_epoch_end", "finish"}
    assert {"evaluates_untrained", "train_items", "loss_fn", "monitor",
            "chance"} <= set(Job.__annotations__)


def _classification(scorer_name: str) -> ClassificationJob:
    job = object.__new__(ClassificationJob)  # the scoring half alone, no model or data
    job.scorer = scorer(scorer_name)
    job.main_metric = job.scorer.main
    return job


def test_the_constant_predictors_score_is_the_floor_a_run_must_beat():
    rte = [{"labels": y} for y in [0] * 146 + [1] * 131]  # RTE dev's label counts
    assert _classification("glue_rte").constant_score(rte) == pytest.approx(146 / 277)
    cola = [{"labels": y} for y in [1] * 7 + [0] * 3]
    assert _classification("glue_cola").constant_score(cola) == 0.0  # MCC of a constant
    stsb = [{"labels": float(y)} for y in (0.5, 2.0, 4.5)]
    assert _classification("glue_stsb").constant_score(stsb) == 0.0  # undefined: counts as 0
    words = object.__new__(EpochGenerationJob)
    words.scorer, words.main_metric = scorer("label_words"), "accuracy"
    words.options = {"label_words": ["negative", "positive"]}
    from experiments.tasks.base import Example
    words.eval_examples = [Example("c", w, meta={"label": ["negative", "positive"].index(w)})
                           for w in ("positive", "negative", "positive")]
    assert words.constant_score() == pytest.approx(2 / 3)


@pytest.mark.parametrize("task", TASKS)
def test_every_task_config_names_a_job_that_implements_the_interface(task):
    cfg = compose_cfg(f"task={task}")
    cls = job_class(cfg)
    assert cls is EXPECTED.get(task, ClassificationJob)
    for name in protocol_methods():
        assert callable(getattr(cls, name)), f"{cls.__name__} lacks {name}"
    assert isinstance(cls.evaluates_untrained, bool)
    assert scorer(cfg.task.scorer) is SCORERS[cfg.task.scorer]
    assert (job_num_labels(cfg) is None) == (cfg.task.kind == "generation")
    check_run_config(cfg)  # the shipped configs pass the checks


def test_glue_main_metric_comes_from_one_place():
    from experiments.metrics.glue import main_metric
    from experiments.tables.minilm import COLUMNS

    assert scorer("glue_cola").main == main_metric("cola") == "matthews_correlation"
    assert scorer("glue_stsb").main == "pearson" and scorer("glue_mrpc").main == "accuracy"
    assert dict((t, m) for t, _, m in COLUMNS)["cola"] == "dev/matthews_correlation"


def test_registry_scorers_score_known_cases():
    labels = scorer("label_words").score(["Positive.", "banana", "negative"], ["", "", ""],
                                         [{"label": 1}, {"label": 0}, {"label": 1}],
                                         {"label_words": ["negative", "positive"]})
    assert labels == {"accuracy": 1 / 3, "n": 3, "unrecognised": 1}
    assert scorer("glue_cola").score([1, 0, 1, 1], [1, 0, 0, 1], [{}] * 4, {}) == {
        "matthews_correlation": pytest.approx(0.5773502691896258)}
    with pytest.raises(MetricInputError, match="task.options.label_words"):
        scorer("label_words").score(["a"], [""], [{"label": 0}], {})
    with pytest.raises(MetricInputError, match="glue_cola"):
        scorer("bleu")


def test_a_task_naming_no_job_or_scorer_is_refused_before_work(tmp_path):
    from experiments.pipeline import run_experiment

    cfg = compose_cfg("profile=smoke", f"paths.results={tmp_path / 'out'}",
                      "task.evaluate=every_epoch", "task.scorer=bleu")  # e2e is decoded at the end
    with pytest.raises(RunConfigError) as err:
        run_experiment(cfg)
    message = str(err.value)
    assert "task.kind='generation' with task.evaluate='every_epoch'" not in message  # a real job
    assert "task.scorer='bleu' must be one of" in message
    cfg = compose_cfg("task=sst2", "task.evaluate=end")
    with pytest.raises(RunConfigError, match="task.kind='classification' with task.evaluate='end' "
                                             "names no job"):
        check_run_config(cfg)
    assert not (tmp_path / "out").exists()
