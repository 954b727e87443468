"""The GPT-3 experiments' tasks (SAMSum, WikiSQL, MNLI/RTE/SST-2 as label words): configs,
formatting against paper_spec App. C, sampling, few-shot prompts, truncation, smoke runs."""
from __future__ import annotations

import json

import pytest
from hydra import compose, initialize_config_dir

from experiments.batching import IGNORE, encode_example
from experiments.paths import CONF_DIR
from experiments.pipeline import run_experiment, warmup_steps_for_tokens
from experiments.tasks import DataMissingError, Example, load_examples
from experiments.tasks.few_shot import draw_demonstrations, few_shot_prompt

from .conftest import shared_data_or_skip

GPT3_TASKS = ["samsum", "wikisql", "mnli_gen", "rte_gen", "sst2_gen"]
# tasks whose only offline data is the shipped fixture
FIXTURE = {"wikisql": ["task.options.fixture=true"], "mnli_gen": ["task.options.fixture=true"]}
SHARED = {"samsum": ("data", "samsum"), "rte_gen": ("data", "glue", "RTE"),
          "sst2_gen": ("data", "glue", "SST-2")}


def compose_cfg(*overrides: str):
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        return compose(config_name="config", overrides=list(overrides))


def smoke_overrides(task: str, tmp_path, *extra: str) -> list[str]:
    return ["model=smollm2_135m", f"task={task}", "train=gpt3", "profile=smoke",
            f"paths.results={tmp_path}", *FIXTURE.get(task, []), *extra]


# ------------------------------------------------------------------------------ configs

@pytest.mark.parametrize("task", GPT3_TASKS)
def test_task_configs_compose_with_their_decode_settings(task):
    cfg = compose_cfg(f"task={task}", "train=gpt3", "method=lora")
    assert cfg.task.name == task and cfg.task.kind == "generation"
    assert cfg.decode.num_beams == 1 and cfg.decode.no_repeat_ngram_size == 0
    assert cfg.decode.max_context_tokens == cfg.task.seq_len - cfg.decode.max_new_tokens
    # Table 12
    assert cfg.task.seq_len == {"samsum": 2048, "wikisql": 384}.get(task, 768)
    assert (cfg.train.epochs, cfg.train.batch_size, cfg.train.weight_decay) == (2, 128, 0.1)
    assert cfg.train.warmup_tokens == 250_000 and cfg.train.lr == 2e-4
    # the command line still wins over the task's decode options
    assert compose_cfg(f"task={task}", "decode.num_beams=4").decode.num_beams == 4


def test_other_tasks_keep_the_official_beam_search():
    cfg = compose_cfg("task=e2e")
    assert (cfg.decode.num_beams, cfg.decode.no_repeat_ngram_size, cfg.decode.max_context_tokens) \
        == (10, 4, 448)


@pytest.mark.parametrize("method,lr", [("ft", 5e-6), ("pre_embed", 5e-4), ("pre_layer", 1e-4),
                                       ("bitfit", 1.6e-3), ("adapter_h", 1e-4), ("lora", 2e-4)])
def test_gpt3_learning_rate_follows_table12(method, lr):
    assert compose_cfg("task=mnli_gen", "train=gpt3", f"method={method}").train.lr == lr


def test_samsum_trains_on_validation_offline():
    assert dict(compose_cfg("task=samsum").task.splits) == {"train": "validation", "eval": "test"}


def test_warmup_tokens_to_steps():
    class Item:
        def __init__(self, n):
            self.input_ids = [0] * n

    # 128 samples of mean length 60 = 7,680 tokens a step: 250,000 tokens take 33 steps
    assert warmup_steps_for_tokens(250_000, [Item(50), Item(70)], 128) == 33
    assert warmup_steps_for_tokens(10, [{"input_ids": [1] * 100}], 4) == 1


# --------------------------------------------------------------------- formatting (App. C)

def test_samsum_format_on_a_real_test_dialogue():
    shared_data_or_skip("data", "samsum")
    test = load_examples("samsum", "test")
    assert len(test) == 819 and len(load_examples("samsum", "validation")) == 818
    # utterances joined by "\n", then "\n\n" (paper_spec App. C); target = the summary
    assert test[0].context == (
        "Hannah: Hey, do you have Betty's number?\nAmanda: Lemme check\nHannah: <file_gif>\n"
        "Amanda: Sorry, can't find it.\nAmanda: Ask Larry\n"
        "Amanda: He called her last time we were at the park together\n"
        "Hannah: I don't know him well\nHannah: <file_gif>\n"
        "Amanda: Don't be shy, he's very nice\nHannah: If you say so..\n"
        "Hannah: I'd rather you texted him\nAmanda: Just text him 🙂\nHannah: Urgh.. Alright\n"
        "Hannah: Bye\nAmanda: Bye bye\n\n")
    assert test[0].completion == "Hannah needs Betty's number but Amanda doesn't have it. " \
                                 "She needs to contact Larry."


def test_samsum_reads_the_official_corpus_layout(tmp_path, monkeypatch):
    (tmp_path / "samsum").mkdir()
    (tmp_path / "samsum" / "val.json").write_text(json.dumps([
        {"id": "13818513", "dialogue": "Amanda: I baked  cookies.\r\nJerry: Sure!",
         "summary": "Amanda baked cookies."}]))
    monkeypatch.setenv("LORA_REPRO_DATA", str(tmp_path))
    (ex,) = load_examples("samsum", "validation")
    assert ex.context == "Amanda: I baked  cookies.\nJerry: Sure!\n\n"
    assert ex.completion == "Amanda baked cookies." and ex.meta["id"] == "13818513"


def test_wikisql_format_and_gold_sql():
    ex = load_examples("wikisql", "dev", fixture=True)[3]
    assert ex.context == ("Table: Year | Title | Director | Box office (M)\n"
                          "Question: What was the lowest box office of an A. Berg film?")
    assert ex.completion == "SELECT MIN(Box office (M)) FROM table WHERE Director = A. Berg"
    from experiments.metrics.wikisql import parse_wikisql_sql

    assert parse_wikisql_sql(ex.completion, ex.meta["header"]) == ex.meta["sql"]
    assert len(load_examples("wikisql", "train", fixture=True)) == 12


def test_wikisql_real_questions_need_their_tables(tmp_path, monkeypatch):
    monkeypatch.setenv("LORA_REPRO_DATA", str(tmp_path / "d"))
    monkeypatch.setenv("LORA_REPRO_SHARED", str(tmp_path / "s"))
    q = tmp_path / "d" / "wikisql" / "dev.jsonl"
    q.parent.mkdir(parents=True)
    q.write_text(json.dumps({"phase": 1, "table_id": "1-1", "question": "Who?",
                             "sql": {"sel": 0, "agg": 0, "conds": []}}) + "\n")
    with pytest.raises(DataMissingError) as err:
        load_examples("wikisql", "dev")
    text = str(err.value)
    assert str(q) in text and str(q.with_name("dev.tables.jsonl")) in text and "beside" in text
    # a tables file from another release: the missing table is named
    q.with_name("dev.tables.jsonl").write_text(json.dumps({"id": "2-2", "header": ["a"]}) + "\n")
    with pytest.raises(ValueError, match=r"table '1-1'.*dev.tables.jsonl"):
        load_examples("wikisql", "dev")
    # with the real files complete, the fixture is never used, even when allowed
    q.with_name("dev.tables.jsonl").write_text(json.dumps({"id": "1-1", "header": ["Name"]}) + "\n")
    (ex,) = load_examples("wikisql", "dev", fixture=True)
    assert ex.context == "Table: Name\nQuestion: Who?" and ex.completion == "SELECT Name FROM table"


def test_real_runs_never_fall_back_to_fixtures(tmp_path, monkeypatch):
    monkeypatch.setenv("LORA_REPRO_DATA", str(tmp_path / "d"))
    monkeypatch.setenv("LORA_REPRO_SHARED", str(tmp_path / "s"))
    with pytest.raises(DataMissingError, match=str(tmp_path / "d" / "wikisql")):
        load_examples("wikisql", "train")
    with pytest.raises(DataMissingError, match="MNLI/train.tsv"):
        load_examples("mnli_gen", "train")
    with pytest.raises(DataMissingError, match=str(tmp_path / "d" / "samsum")):
        load_examples("samsum", "test")


def test_bad_samsum_file_is_named(tmp_path, monkeypatch):
    (tmp_path / "samsum").mkdir()
    bad = tmp_path / "samsum" / "test.json"
    bad.write_text(json.dumps([{"dialogue": "A: hi"}]))
    monkeypatch.setenv("LORA_REPRO_DATA", str(tmp_path))
    with pytest.raises(ValueError, match=rf"{bad}: record 0 lacks .*summary"):
        load_examples("samsum", "test")
    bad.write_text("{not json")
    with pytest.raises(ValueError, match=rf"{bad}:1: not valid JSON"):
        load_examples("samsum", "test")


def test_mnli_gen_format_on_the_fixture():
    ex = load_examples("mnli_gen", "dev_matched", fixture=True)[1]
    assert ex.context == ("Premise: The children built a snowman in the garden before lunch.\n"
                          "Hypothesis: The children stayed indoors all day.")
    assert ex.completion == "contradiction" and ex.meta["label"] == 2


def test_rte_and_sst2_format_on_real_dev_rows():
    shared_data_or_skip("data", "glue")
    rte = load_examples("rte_gen", "dev")
    assert len(rte) == 277
    assert rte[0].context == ("Premise: Dana Reeve, the widow of the actor Christopher Reeve, has "
                              "died of lung cancer at age 44, according to the Christopher Reeve "
                              "Foundation.\nHypothesis: Christopher Reeve had an accident.")
    assert (rte[0].completion, rte[1].completion) == ("not_entailment", "entailment")
    sst2 = load_examples("sst2_gen", "dev")
    assert sst2[0].context == "Sentence: it 's a charming and often affecting journey ."
    assert (sst2[0].completion, sst2[1].completion) == ("positive", "negative")
    custom = load_examples("sst2_gen", "dev", limit=2, label_words=["bad", "good"])
    assert [e.completion for e in custom] == ["good", "bad"]
    with pytest.raises(ValueError, match="label_words"):
        load_examples("sst2_gen", "dev", label_words=["bad"])


# ------------------------------------------------------------------ truncation and few-shot

def test_long_context_loses_its_start_and_keeps_the_completion(smollm2_tokenizer):
    tok = smollm2_tokenizer
    ex = Example("one two three four five six seven eight nine ten", "eleven twelve")
    whole = encode_example(tok, ex, 1000, "context_start")
    cut = encode_example(tok, ex, 8, "context_start")
    assert not whole.truncated and cut.truncated and len(cut.input_ids) == 8
    completion = [t for t in whole.labels if t != IGNORE]
    assert [t for t in cut.labels if t != IGNORE] == completion  # the whole completion trains
    assert cut.input_ids == whole.input_ids[-8:]  # the context's start went
    assert cut.input_ids[-len(completion) - 1] == tok.eos_token_id  # separator kept
    with pytest.raises(ValueError, match="raise task.seq_len"):
        encode_example(tok, ex, 3, "context_start")


def test_truncated_examples_are_counted(tmp_path, smollm2_tokenizer):
    from experiments.job import Job, make_job

    cfg = compose_cfg(*smoke_overrides("wikisql", tmp_path, "task.seq_len=24",
                                       "decode.max_context_tokens=16"))
    job = make_job(cfg, smollm2_tokenizer, "cpu")
    assert isinstance(job, Job) and job.monitor == ("dev/lf_accuracy", "higher")
    summary = job.data_summary()
    assert summary["truncation"] == "context_start"
    assert 0 < summary["truncated_train"] <= summary["train_examples"] == 12
    assert summary["truncated_eval"] == 4  # max_eval_sources in the smoke profile


def test_few_shot_draws_k_per_class_reproducibly():
    train = [Example(f"c{i}", w, meta={"label": y})
             for i, (w, y) in enumerate([("yes", 0), ("no", 1)] * 5)]
    demos = draw_demonstrations(train, per_class=2, seed=3)
    assert sorted(d.meta["label"] for d in demos) == [0, 0, 1, 1]
    assert demos == draw_demonstrations(train, per_class=2, seed=3)
    assert any(draw_demonstrations(train, 2, s) != demos for s in range(4, 10))
    assert draw_demonstrations(train, per_class=0, seed=3) == []
    with pytest.raises(ValueError, match="only 5 of class"):
        draw_demonstrations(train, per_class=6, seed=0)
    with pytest.raises(ValueError, match="needs a task whose examples carry a class"):
        draw_demonstrations([Example("dialogue", "summary")], per_class=1, seed=0)


def test_few_shot_prompt_layout():
    demos = [Example("Premise: A\nHypothesis: B", "entailment"),
             Example("Premise: C\nHypothesis: D", "neutral")]
    prompt = few_shot_prompt(demos, "Premise: E\nHypothesis: F", "<eos>", "<eos>")
    # each demonstration as a training line (context, separator, " " + label, end), blank line
    assert prompt == ("Premise: A\nHypothesis: B<eos> entailment<eos>\n\n"
                      "Premise: C\nHypothesis: D<eos> neutral<eos>\n\n"
                      "Premise: E\nHypothesis: F")
    assert few_shot_prompt([], "ctx", "<eos>", "<eos>") == "ctx"


def test_job_prefixes_every_eval_context(tmp_path, smollm2_tokenizer):
    from experiments.job import make_job

    cfg = compose_cfg(*smoke_overrides("mnli_gen", tmp_path, "method=none",
                                       "task.options.few_shot.per_class=2",
                                       "task.options.few_shot.seed=7"))
    job = make_job(cfg, smollm2_tokenizer, "cpu")
    assert len(job.demos) == 6 and sorted(d.meta["label"] for d in job.demos) == [0, 0, 1, 1, 2, 2]
    eos = smollm2_tokenizer.eos_token
    head = "".join(f"{d.context}{eos} {d.completion}{eos}\n\n" for d in job.demos)
    assert [p[:len(head)] for p in job.prompts] == [head] * len(job.eval_examples)
    assert [p[len(head):] for p in job.prompts] == [ex.context for ex in job.eval_examples]
    assert job.data_summary()["few_shot_demonstrations"] == 6
    # the separator text reads back as the eos token the model was trained with
    ids = smollm2_tokenizer.encode(job.prompts[0], add_special_tokens=False)
    assert ids.count(smollm2_tokenizer.eos_token_id) == 12


# ----------------------------------------------------------------------------- sampling

def test_mnli_n_sample_is_reproducible_from_its_seed(tmp_path, smollm2_tokenizer):
    from experiments.job import make_job

    def sample(seed):
        cfg = compose_cfg(*smoke_overrides("mnli_gen", tmp_path, "data.max_train=5",
                                           f"data.sample_seed={seed}"))
        return [ex.context + ex.completion for ex in make_job(cfg, smollm2_tokenizer, "cpu").train_examples]

    first = sample(1)
    assert len(first) == 5 and first == sample(1)
    assert sample(2) != first
    every = [ex.context + ex.completion for ex in load_examples("mnli_gen", "train", fixture=True)]
    assert first == [x for x in every if x in first]  # drawn at random, kept in file order
    assert first != every[:5]


# -------------------------------------------------------------------------- smoke runs

@pytest.mark.parametrize("task", GPT3_TASKS)
def test_each_task_runs_in_smoke_profile(task, tmp_path, smollm2_tokenizer):
    if task in SHARED:
        shared_data_or_skip(*SHARED[task])
    # SAMSum's lines are long: 8 of them still make the smoke profile's 2 steps of 4
    extra = ["data.max_train=8"] if task == "samsum" else []
    record = json.loads(run_experiment(compose_cfg(*smoke_overrides(task, tmp_path, *extra))).read_text())
    assert record["status"] == "complete" and record["train"]["steps"] == 2
    split = record["config"]["task"]["splits"]["eval"]
    expected = {"samsum": {"ROUGE-1", "ROUGE-2", "ROUGE-L"},
                "wikisql": {"lf_accuracy", "exact_match", "unparseable"}}.get(
                    task, {"accuracy", "unrecognised"})
    assert {f"{split}/{k}" for k in expected} <= set(record["metrics"])
    assert record["best_epoch"] == 1 and record["data"]["eval_examples"] == {split: 4}
    assert record["data"]["truncated_train"] == 0
    run_dir = tmp_path / "runs" / record["experiment"] / "seed1"
    assert len((run_dir / "predictions.txt").read_text().splitlines()) == 4
    assert (run_dir / "adapter" / "lora_adapter.safetensors").exists()


def test_few_shot_runs_without_training(tmp_path, smollm2_tokenizer):
    cfg = compose_cfg(*smoke_overrides("mnli_gen", tmp_path, "method=none",
                                       "task.options.few_shot.per_class=2"))
    record = json.loads(run_experiment(cfg).read_text())
    assert record["status"] == "complete" and record["method"] == "none"
    assert record["params"]["trainable"] == 0 and record["train"]["steps"] == 0
    assert record["weights"] == {} and "best_epoch" not in record
    assert record["data"]["few_shot_demonstrations"] == 6
    assert set(record["metrics"]) == {"dev_matched/accuracy", "dev_matched/n",
                                      "dev_matched/unrecognised"}
    run_dir = tmp_path / "runs" / record["experiment"] / "seed1"
    assert sorted(p.name for p in run_dir.iterdir()) == ["predictions.txt", "record.json",
                                                         "references.txt"]


def test_untrained_classification_run_is_refused(tmp_path):
    shared_data_or_skip("data", "glue", "RTE")
    cfg = compose_cfg("model=minilm_l6", "task=rte", "method=none", "profile=smoke",
                      f"paths.results={tmp_path}")
    with pytest.raises(ValueError, match="nothing trainable"):
        run_experiment(cfg)


def test_decoding_every_k_epochs_scores_those_and_the_last(tmp_path, smollm2_tokenizer):
    shared_data_or_skip(*SHARED["sst2_gen"])
    cfg = compose_cfg(*smoke_overrides("sst2_gen", tmp_path, "train.epochs=3", "train.max_steps=0",
                                       "data.max_train=4", "decode.every_epochs=2"))
    record = json.loads(run_experiment(cfg).read_text())
    history = record["train"]["history"]
    assert [h["epoch"] for h in history] == [1, 2, 3]
    assert ["dev/accuracy" in h for h in history] == [False, True, True]
    assert record["best_epoch"] in (2, 3) and record["predictions_epoch"] == record["best_epoch"]
    assert record["decode"]["wall_s"] == history[-1]["decode_wall_s"]


def test_lora_with_a_prefix_runs_and_keeps_both_parts(tmp_path, smollm2_tokenizer):
    """Table 15's LoRA+PE end to end: both parts saved together (no LoRA-only adapter file)."""
    from safetensors.torch import load_file

    shared_data_or_skip(*SHARED["sst2_gen"])
    cfg = compose_cfg(*smoke_overrides("sst2_gen", tmp_path, "method=lora_pre_embed",
                                       "method.prefix_length=2", "method.infix_length=1"))
    record = json.loads(run_experiment(cfg).read_text())
    assert record["status"] == "complete" and record["method"] == "lora_pre_embed"
    run_dir = tmp_path / "runs" / record["experiment"] / "seed1"
    saved = load_file(str(run_dir / "trainable.safetensors"))
    assert any("lora_A" in k for k in saved) and any("prefix_tuning" in k for k in saved)
    assert sum(t.numel() for t in saved.values()) == record["params"]["trainable"]
    assert not (run_dir / "adapter").exists()
