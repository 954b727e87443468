"""Checkpoint I/O, `python scripts/bench_checkpoint_io.py`: torch.save / torch.load against
experiments.checkpoints (safetensors + JSON) on a 192 MiB training state (16 tensors of 1M
floats, two Adam moments each); the best of 3 of each, printed."""
import tempfile
import time
from pathlib import Path
import torch
from experiments.checkpoints import load_checkpoint, save_checkpoint
torch.manual_seed(0)
state = {"trainable": {f"p{i}": torch.randn(1024, 1024) for i in range(16)},
         "optimizer": {"state": {i: {"step": torch.tensor(3.), "exp_avg": torch.randn(1024, 1024),
                                     "exp_avg_sq": torch.rand(1024, 1024)} for i in range(16)},
                       "param_groups": [{"lr": 1e-3, "betas": (0.9, 0.999), "params": list(range(16))}]},
         "rng": torch.get_rng_state(), "step": 5, "history": [], "epoch": 0, "batch_in_epoch": 3}
d = Path(tempfile.mkdtemp())
for name, save, load, p in [
        ("torch.save / torch.load", lambda p: torch.save(state, p),
         lambda p: torch.load(p, weights_only=False), d / "a.pt"),
        ("safetensors + JSON", lambda p: save_checkpoint(p, state), load_checkpoint, d / "a.json")]:
    ts, tl = [], []
    for _ in range(3):
        t = time.perf_counter(); save(p); ts.append(time.perf_counter() - t)
        t = time.perf_counter(); back = load(p); tl.append(time.perf_counter() - t)
        assert torch.equal(back["trainable"]["p3"], state["trainable"]["p3"])
    size = sum(f.stat().st_size for f in d.iterdir())
    print(f"{name}: save {min(ts):.2f} s, load {min(tl):.2f} s, {size / 2**20:.0f} MiB")
    for f in d.iterdir():
        f.unlink()
