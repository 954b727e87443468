"""The training engine: the official loss and schedule, resume == uninterrupted, NaN stops."""
from __future__ import annotations

import math

import pytest
import torch

from experiments.batching import Encoded, collate_causal
from experiments.engine import (TrainConfig, TrainingDivergedError, causal_lm_loss, epoch_batches,
                                linear_schedule, train)
from lora_core import LoRAConfig, apply_lora

from .conftest import tiny_model


def curve_losses(result) -> list[float]:
    """The training-loss points of a result's curve (dev points carry no "loss")."""
    return [p["loss"] for p in result.curve if "loss" in p]


def items(n=24, seed=0):
    g = torch.Generator().manual_seed(seed)
    out = []
    for _ in range(n):
        ctx = torch.randint(3, 97, (5,), generator=g).tolist()
        comp = torch.randint(3, 97, (4,), generator=g).tolist()
        out.append(Encoded(ctx + comp, [-100] * 5 + comp))
    return out


def test_schedule_matches_official():
    f = linear_schedule(warmup=500, total=26290)
    assert f(0) == 0.0 and f(250) == 0.5 and f(500) == 1.0
    assert f(26290) == 0.0 and f(30000) == 0.0
    assert math.isclose(f(13395), (26290 - 13395) / (26290 - 500))


def test_loss_masks_context_and_smooths_uniformly():
    class Fixed(torch.nn.Module):
        def __init__(self, logits):
            super().__init__()
            self.logits = logits

        def forward(self, input_ids, attention_mask):
            return type("Out", (), {"logits": self.logits})()

    logits = torch.tensor([[[0.0, 0.0, 0.0], [2.0, 0.0, 0.0], [0.0, 1.0, 0.0]]])
    batch = {"input_ids": torch.tensor([[0, 1, 0]]), "attention_mask": torch.ones(1, 3),
             "labels": torch.tensor([[-100, -100, 0]])}
    # only position 1 predicts a target (token 0): p = e^2 / (e^2 + 2)
    logp = torch.log_softmax(torch.tensor([2.0, 0.0, 0.0]), -1)
    loss, n = causal_lm_loss(0.0)(Fixed(logits), batch)
    assert n == 1 and math.isclose(loss.item(), -logp[0].item() / (1 + 1e-4), rel_tol=1e-6)
    smoothed, _ = causal_lm_loss(0.1)(Fixed(logits), batch)
    expected = 0.9 * -logp[0] + 0.1 * -logp.mean()
    assert math.isclose(smoothed.item(), expected.item() / (1 + 1e-4), rel_tol=1e-6)


def test_epoch_order_is_seeded_and_drops_last():
    a = epoch_batches(10, 3, seed=1, epoch=0)
    assert len(a) == 3 and all(len(b) == 3 for b in a)
    assert a == epoch_batches(10, 3, seed=1, epoch=0) != epoch_batches(10, 3, seed=1, epoch=1)


def lora_gpt2():
    model = tiny_model("gpt2")
    apply_lora(model, LoRAConfig(targets={"q": 4, "v": 4}, alpha=8, dropout=0.1))
    return model


@pytest.fixture
def keep_threads():
    """train() sets torch's threads for the process: the later tests get theirs back."""
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


def test_resumed_run_equals_uninterrupted(tmp_path, keep_threads):
    # log_every=3 does not divide save_every=4: the checkpoint cuts a curve window in two.
    # One thread: what is tested is the restored state; with 2 threads a CPU kernel's reduction
    # order varied once under load (the assertion below is exact)
    cfg = TrainConfig(lr=1e-2, epochs=2, batch_size=4, warmup_steps=2, log_every=3, save_every=4,
                      threads=1)
    data = items()
    full = lora_gpt2()
    uninterrupted = train(full, data, collate_causal, causal_lm_loss(0.1), cfg,
                          on_epoch_end=lambda epoch, model: {"valid_loss": float(epoch)})
    interrupted = lora_gpt2()
    ckpt = tmp_path / "last.pt"
    train(interrupted, data, collate_causal, causal_lm_loss(0.1), cfg, checkpoint=ckpt,
          stop_after_steps=5)  # killed after step 5; the last checkpoint is from step 4
    resumed = lora_gpt2()
    result = train(resumed, data, collate_causal, causal_lm_loss(0.1), cfg, checkpoint=ckpt,
                   on_epoch_end=lambda epoch, model: {"valid_loss": float(epoch)})
    assert result.resumed_from == 4 and result.steps == 12
    assert result.curve == uninterrupted.curve  # the learning curve too, tokens included
    train_points = [p for p in result.curve if "loss" in p]
    assert [p["step"] for p in train_points] == [3, 6, 9, 12]
    assert [(p["step"], p["dev_loss"]) for p in result.curve if "dev_loss" in p] == [(6, 1.0),
                                                                                      (12, 2.0)]
    assert train_points[-1]["tokens"] == 12 * 4 * 9  # 12 steps of 4 items of 9 tokens
    assert result.summary()["curve"] == result.curve
    for (name, a), (_, b) in zip(full.named_parameters(), resumed.named_parameters()):
        if a.requires_grad:
            torch.testing.assert_close(a, b, rtol=0, atol=0, msg=name)


def test_nan_loss_stops_the_run():
    model = lora_gpt2()
    with torch.no_grad():
        model.transformer.h[0].attn.c_attn.lora_B.fill_(float("nan"))
    with pytest.raises(TrainingDivergedError, match="not marked complete"):
        train(model, items(), collate_causal, causal_lm_loss(), TrainConfig(batch_size=4, log_every=0))


def test_too_little_data_is_an_error():
    with pytest.raises(ValueError, match="no full batch"):
        train(lora_gpt2(), items(3), collate_causal, causal_lm_loss(), TrainConfig(batch_size=8))


@pytest.mark.parametrize("family", ["gpt2", "llama"])
def test_loss_on_selected_logits_equals_full_head(family):
    """The head run only at target positions gives the full head's loss and gradients, with
    targets at different positions per row (a padded row, a longer completion)."""
    batch = collate_causal([Encoded([5, 6, 7, 8, 9, 10, 11], [-100] * 5 + [10, 11]),
                            Encoded([5, 6, 7, 8], [-100, -100, 7, 8]),
                            Encoded([9, 8, 7, 6, 5, 4], [-100] * 3 + [6, 5, 4])])
    loss_fn = causal_lm_loss(0.1)
    results = []
    for hide_selection in (False, True):
        model = tiny_model(family)

        class Plain(torch.nn.Module):  # a forward without `logits_to_keep`: the full head
            def __init__(self, inner):
                super().__init__()
                self.inner = inner

            def forward(self, input_ids, attention_mask):
                return self.inner(input_ids=input_ids, attention_mask=attention_mask)

        loss, n = loss_fn(Plain(model) if hide_selection else model, batch)
        loss.backward()
        grad = next(p for p in model.parameters() if p.requires_grad).grad.clone()
        results.append((loss.item(), n, grad))
    (selected, n_sel, g_sel), (full, n_full, g_full) = results
    assert n_sel == n_full == 7
    assert math.isclose(selected, full, rel_tol=1e-6)
    assert torch.allclose(g_sel, g_full, atol=1e-6)


def test_fast_path_loss_equals_straightforward_loop():
    """The engine's fast path (fused AdamW, SDPA attention, the head at target positions only)
    gives the losses and weights of a straightforward loop (per-tensor AdamW, eager attention,
    the head over every position, the loss written out) to float rounding."""
    from experiments.batch_order import epoch_batches as order_of

    cfg = TrainConfig(lr=1e-2, epochs=1, batch_size=4, warmup_steps=2, log_every=0,
                      progress=False, optimizer_impl="fused")
    data = items()
    fast = tiny_model("llama")
    apply_lora(fast, LoRAConfig(targets={"q": 4, "v": 4}, alpha=8))
    assert fast.config._attn_implementation == "sdpa"
    fast_losses = []
    train(fast, data, collate_causal, causal_lm_loss(),
          cfg, on_step=lambda step, m: fast_losses.append(m["train/loss"]))

    slow = tiny_model("llama")
    slow.set_attn_implementation("eager")
    apply_lora(slow, LoRAConfig(targets={"q": 4, "v": 4}, alpha=8))
    torch.manual_seed(cfg.seed)
    params = [p for p in slow.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=cfg.lr, betas=cfg.betas, eps=cfg.eps,
                            weight_decay=cfg.weight_decay, foreach=False)
    batches = order_of(len(data), 4, cfg.seed, 0)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, linear_schedule(2, len(batches)))
    slow.train()
    slow_losses = []
    for b in batches:
        batch = collate_causal([data[i] for i in b])
        logits = slow(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
        target = batch["labels"][:, 1:]
        mask = target != -100
        nll = torch.nn.functional.cross_entropy(logits[:, :-1][mask], target[mask], reduction="sum")
        loss = nll / (mask.sum() + 1e-4)
        loss.backward()
        opt.step()
        sched.step()
        opt.zero_grad()
        slow_losses.append(loss.item())
    assert len(fast_losses) == len(slow_losses) == 6
    assert fast_losses[-1] != fast_losses[0]  # it trained
    torch.testing.assert_close(torch.tensor(fast_losses), torch.tensor(slow_losses),
                               rtol=1e-5, atol=1e-6)
    for (name, a), (_, b) in zip(fast.named_parameters(), slow.named_parameters()):
        if a.requires_grad:
            torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-6, msg=name)


def test_result_keeps_training_and_evaluation_time_apart():
    def slow_eval(epoch, model):
        import time
        time.sleep(0.3)
        return {"valid_loss": 1.0}

    result = train(lora_gpt2(), items(), collate_causal, causal_lm_loss(),
                   TrainConfig(batch_size=4, log_every=0, progress=False, threads=1),
                   on_epoch_end=slow_eval)
    summary = result.summary()
    assert summary["eval_wall_s"] >= 0.3 and result.threads == 1 and summary["attention"] == "sdpa"
    assert math.isclose(result.wall_s, result.train_wall_s + result.eval_wall_s, rel_tol=1e-6)
    assert summary["tokens"] == 24 * 9 and summary["padding_fraction"] == 0.0
    assert math.isclose(result.tokens_per_s, result.tokens / result.train_wall_s, rel_tol=1e-6)


def test_optimizer_state_only_for_trainable_tensors():
    from experiments.engine import make_optimizer, parameter_groups

    model = lora_gpt2()
    opt = make_optimizer(parameter_groups(model, TrainConfig()), TrainConfig())
    held = {id(p) for g in opt.param_groups for p in g["params"]}
    assert held == {id(p) for p in model.parameters() if p.requires_grad}
    assert len(held) == 4 and opt.defaults["fused"] is True
    with pytest.raises(ValueError, match="optimizer_impl='adam'"):
        make_optimizer(parameter_groups(model, TrainConfig()), TrainConfig(optimizer_impl="adam"))


def test_evaluate_loss_does_not_depend_on_batching():
    from experiments.engine import evaluate_loss

    from .test_bucketing import varied_items

    model, data = lora_gpt2(), varied_items(13)
    per_item = evaluate_loss(model, data, collate_causal, causal_lm_loss(), batch_size=1)
    batched = evaluate_loss(model, data, collate_causal, causal_lm_loss(), batch_size=4)
    assert math.isclose(per_item, batched, rel_tol=1e-4)


def test_threads_default_to_the_cores_divided_among_side_by_side_jobs(monkeypatch):
    from experiments.engine import configure_threads, usable_cores

    before = torch.get_num_threads()
    try:
        monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
        monkeypatch.delenv("LORA_REPRO_JOBS", raising=False)
        assert configure_threads(0) == usable_cores() == torch.get_num_threads()
        monkeypatch.setenv("LORA_REPRO_JOBS", str(usable_cores() * 2))
        assert configure_threads(0) == 1  # never below one, never oversubscribed
        monkeypatch.setenv("OMP_NUM_THREADS", "1")
        assert configure_threads(0) == 1 == torch.get_num_threads()
        assert configure_threads(3) == 3 == torch.get_num_threads()  # asked for: obeyed
    finally:
        torch.set_num_threads(before)


def scripted_dev(values):
    """on_epoch_end returning a scripted dev accuracy per epoch."""
    return lambda epoch, model: {"dev/accuracy": values[epoch - 1]}


def test_patience_stops_once_the_dev_metric_stopped_improving(tmp_path):
    cfg = TrainConfig(lr=1e-3, epochs=8, batch_size=4, log_every=0, progress=False, patience=1)
    dev = scripted_dev([0.5, 0.6, 0.7, 0.65, 0.9, 0.9, 0.9, 0.9])
    result = train(lora_gpt2(), items(), collate_causal, causal_lm_loss(), cfg,
                   on_epoch_end=dev, monitor=("dev/accuracy", "higher"))
    # epoch 4 is no better than epoch 3: stop there, 4 of 8 epochs, 6 steps each
    assert [h["epoch"] for h in result.history] == [1, 2, 3, 4] and result.steps == 24
    assert result.summary()["converged"] is True and result.summary()["stopped_early"] is True
    # a run killed after its fourth epoch stops at once when resumed, to the same history
    ckpt = tmp_path / "last.json"
    train(lora_gpt2(), items(), collate_causal, causal_lm_loss(), cfg, checkpoint=ckpt,
          on_epoch_end=dev, monitor=("dev/accuracy", "higher"), stop_after_steps=25)
    resumed = train(lora_gpt2(), items(), collate_causal, causal_lm_loss(), cfg, checkpoint=ckpt,
                    on_epoch_end=dev, monitor=("dev/accuracy", "higher"))
    assert resumed.history == result.history and resumed.stopped_early


def test_a_patience_of_three_waits_for_a_fourth_evaluation():
    """patience p needs p + 1 evaluations (the last p against a best before them), however
    few min_evaluations asks for: RTE's glue_minilm runs wait 3 epochs."""
    cfg = TrainConfig(lr=1e-3, epochs=8, batch_size=4, log_every=0, progress=False, patience=3)
    result = train(lora_gpt2(), items(), collate_causal, causal_lm_loss(), cfg,
                   on_epoch_end=scripted_dev([0.7, 0.6, 0.65, 0.69, 0.8, 0.7, 0.75, 0.9]),
                   monitor=("dev/accuracy", "higher"))
    # epochs 2-4 are no better than epoch 1: stop after the 4th
    assert [h["epoch"] for h in result.history] == [1, 2, 3, 4] and result.stopped_early


def test_a_metric_still_rising_at_the_last_epoch_is_not_converged():
    cfg = TrainConfig(lr=1e-3, epochs=3, batch_size=4, log_every=0, progress=False, patience=1)
    result = train(lora_gpt2(), items(), collate_causal, causal_lm_loss(), cfg,
                   on_epoch_end=scripted_dev([0.5, 0.6, 0.7]), monitor=("dev/accuracy", "higher"))
    assert result.steps == 18 and result.summary()["converged"] is False
    assert not result.stopped_early
    # no patience: the record says nothing about convergence (the ledger reads the history)
    plain = train(lora_gpt2(), items(), collate_causal, causal_lm_loss(),
                  TrainConfig(epochs=1, batch_size=4, log_every=0, progress=False))
    assert "converged" not in plain.summary() and plain.summary()["autocast"] == "none"


def test_a_run_at_the_constant_predictors_level_trains_on():
    """Three flat evaluations at the chance level stop nothing: the run goes on until it has
    beaten chance and then stopped improving, and its record keeps the level."""
    cfg = TrainConfig(lr=1e-3, epochs=8, batch_size=4, log_every=0, progress=False, patience=2)
    dev = scripted_dev([0.0, 0.0, 0.0, 0.0, 0.2, 0.1, 0.15, 0.3])
    result = train(lora_gpt2(), items(), collate_causal, causal_lm_loss(), cfg,
                   on_epoch_end=dev, monitor=("dev/accuracy", "higher"), chance=0.0)
    assert [h["epoch"] for h in result.history] == [1, 2, 3, 4, 5, 6, 7] and result.stopped_early
    assert result.summary()["chance"] == {"metric": "dev/accuracy", "value": 0.0}
    # never above chance within the cap: trained to the end, and not converged
    stuck = train(lora_gpt2(), items(), collate_causal, causal_lm_loss(),
                  TrainConfig(lr=1e-3, epochs=4, batch_size=4, log_every=0, progress=False,
                              patience=2),
                  on_epoch_end=scripted_dev([0.0] * 4), monitor=("dev/accuracy", "higher"),
                  chance=0.0)
    assert len(stuck.history) == 4 and stuck.summary()["converged"] is False


def test_run_epochs_trains_the_first_epochs_of_the_long_schedule():
    """An lr sweep's run sees its cell's own first epochs: the lr has not decayed to 0."""
    long = TrainConfig(lr=1e-3, epochs=10, run_epochs=2, batch_size=4, log_every=0,
                       progress=False)
    result = train(lora_gpt2(), items(), collate_causal, causal_lm_loss(), long)
    assert result.steps == 12 and len(result.history) == 2
    # 12 of 60 steps of a linear decay from 1e-3: 8e-4 left, where a 2-epoch schedule ends at 0
    assert result.curve[-1]["lr"] == pytest.approx(8e-4)


def test_patience_needs_a_metric_and_autocast_a_known_dtype():
    with pytest.raises(ValueError, match="names no dev metric"):
        train(lora_gpt2(), items(), collate_causal, causal_lm_loss(),
              TrainConfig(batch_size=4, patience=1))
    with pytest.raises(ValueError, match="train.autocast"):
        train(lora_gpt2(), items(), collate_causal, causal_lm_loss(),
              TrainConfig(batch_size=4, autocast="fp8"))


def test_bf16_autocast_trains_close_to_float32_and_keeps_float32_weights():
    def run(autocast):
        model = lora_gpt2()
        result = train(model, items(), collate_causal, causal_lm_loss(),
                       TrainConfig(lr=1e-2, epochs=2, batch_size=4, log_every=1, progress=False,
                                   autocast=autocast))
        return model, curve_losses(result), result

    fp32_model, fp32, _ = run("none")
    bf16_model, bf16, result = run("bf16")
    assert result.summary()["autocast"] == "bf16"
    assert result.summary()["attention"] == "sdpa (math kernel)"  # CPU under bf16: step_context
    assert all(p.dtype == torch.float32 for p in bf16_model.parameters())
    assert fp32 != bf16  # the autocast really ran in bfloat16 ...
    assert max(abs(a - b) for a, b in zip(fp32, bf16)) < 0.05 * max(fp32)  # ... to bf16 rounding


def _sdpa_backward_name(device: str, autocast: str, kernel: str) -> str:
    from experiments.engine import step_context

    enter, _ = step_context(device, autocast, kernel)
    q, k, v = (torch.randn(2, 3, 8, 16, requires_grad=True) for _ in range(3))
    with enter():
        out = torch.nn.functional.scaled_dot_product_attention(q, k, v, is_causal=True)
    return type(out.grad_fn).__name__


def test_step_context_runs_math_attention_on_cpu_under_bf16_only():
    from experiments.engine import step_context

    # torch's own choice on CPU is the fused flash kernel, in float32 and in bf16
    assert "Flash" in _sdpa_backward_name("cpu", "none", "auto")
    assert "Flash" in _sdpa_backward_name("cpu", "bf16", "default")
    # under bf16 with kernel="auto", the composite math kernel: no fused backward node
    assert "Flash" not in _sdpa_backward_name("cpu", "bf16", "auto")
    assert step_context("cpu", "bf16")[1] and not step_context("cpu", "none")[1]
    assert not step_context("cuda", "bf16")[1]  # a GPU keeps flash attention
    assert not step_context("cpu", "bf16", frozen=False)[1]  # FT: no measured gain, torch's choice
    with pytest.raises(ValueError, match="train.attention_kernel"):
        step_context("cpu", "bf16", "math")


def test_compiled_training_matches_eager_and_keeps_the_selected_logits(monkeypatch):
    from experiments import engine

    # aot_eager traces and runs the same graph as inductor, without a C++ compiler
    monkeypatch.setattr(engine, "COMPILE_BACKEND", "aot_eager")
    torch._dynamo.reset()
    cfg = dict(lr=1e-2, batch_size=4, log_every=1, progress=False, threads=1)
    seen = []

    def run(compile_):
        model = lora_gpt2()
        result = train(model, items(), collate_causal, causal_lm_loss(),
                       TrainConfig(**cfg, compile=compile_),
                       on_epoch_end=lambda e, m: seen.append(type(m).__name__) or {})
        return model, result

    from torch._dynamo.utils import counters

    eager_model, eager = run(False)
    assert counters["stats"]["unique_graphs"] == 0
    compiled_model, compiled = run(True)
    assert counters["stats"]["unique_graphs"] >= 1  # dynamo really traced the training steps
    assert compiled.summary()["compiled"] and "compiled" not in eager.summary()
    assert seen[-1] == type(compiled_model).__name__  # evaluation gets the model, uncompiled
    assert curve_losses(eager)[0] != curve_losses(eager)[-1]  # it trained
    torch.testing.assert_close(torch.tensor(curve_losses(compiled)),
                               torch.tensor(curve_losses(eager)), rtol=1e-4, atol=1e-5)
    for (name, a), (_, b) in zip(compiled_model.named_parameters(), eager_model.named_parameters()):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5, msg=name)
    wrapped = torch.compile(compiled_model, backend="aot_eager")
    assert engine._computes_selected_logits(wrapped)  # logits_to_keep seen through the wrapper


def test_compile_without_a_cpp_compiler_is_refused_before_training(monkeypatch):
    import torch._inductor.config as inductor_config

    from experiments import engine

    monkeypatch.setattr(inductor_config.cpp, "cxx", (None, "no-such-c++-compiler"))
    monkeypatch.delenv("CXX", raising=False)
    model = lora_gpt2()
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    with pytest.raises(ValueError, match="needs a C\\+\\+ compiler.*train.compile=false"):
        train(model, items(), collate_causal, causal_lm_loss(),
              TrainConfig(batch_size=4, progress=False, threads=1, compile=True))
    assert all(torch.equal(p, before[n]) for n, p in model.named_parameters())
    engine._check_can_compile("cuda")  # a GPU compiles with triton: no C++ compiler asked for


@pytest.mark.parametrize("method, params", [
    ("adapter_h", {"r": 4}), ("pre_layer", {"prefix_length": 4, "infix_length": 2})])
def test_inserted_modules_and_prefixes_train_compiled_as_eager(monkeypatch, method, params):
    """On a tiny Llama, the two other shapes of method gpt3_smollm2 trains besides LoRA and FT
    (the GPT-2 test above): modules inserted in each block, and a prefix wrapper that computes
    every logit. The compiled steps give eager's losses. (About 30 s each: dynamo traces the
    model twice.)"""
    from lora_core import apply_method

    from experiments import engine

    from .conftest import tiny_model

    monkeypatch.setattr(engine, "COMPILE_BACKEND", "aot_eager")
    torch._dynamo.reset()

    def losses(compile_):
        model = tiny_model("llama").train()
        apply_method(model, method, **params)
        result = train(model, items(16), collate_causal, causal_lm_loss(),
                       TrainConfig(lr=1e-2, batch_size=4, log_every=1, progress=False, threads=1,
                                   compile=compile_))
        return torch.tensor(curve_losses(result))

    eager = losses(False)
    assert eager[0] != eager[-1]
    torch.testing.assert_close(losses(True), eager, rtol=1e-4, atol=1e-5)
