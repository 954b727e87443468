"""What the speed benchmarks share: this machine's fp32 matmul rate (the reference every rate is
a fraction of) and a FLOP counter for a training step.

FLOPs of a training step, summed over every linear layer call (rows = positions it ran on,
padding included, since the hardware computes them): forward 2·P·rows; the backward pass adds
2·P·rows for the activation gradient of a frozen weight, 4·P·rows for a trained one (activation
and weight gradients). So a LoRA step is about 4·P·T, full fine-tuning 6·P·T. Attention's own
score products (QKᵀ, AV) and embedding look-ups are not counted: at these lengths they are a few
per cent, so the rates below are slight under-estimates.
"""
from __future__ import annotations

import resource
import time

import torch
from torch import nn

MATMUL_SHAPES = ((2048, 2048, 2048), (640, 576, 1536))  # square, and SmolLM2's MLP at 640 rows


def matmul_rate(repeats: int = 5, device: str = "cpu", dtype: torch.dtype = torch.float32) -> dict:
    """Best-of-`repeats` GFLOP/s per shape (fp32 on CPU); `reference` is the higher of the two."""
    rates = {}
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    for m, k, n in MATMUL_SHAPES:
        a = torch.randn(m, k, device=device, dtype=dtype)
        b = torch.randn(k, n, device=device, dtype=dtype)
        a @ b  # first call allocates and warms the kernels
        sync()
        best = float("inf")
        for _ in range(repeats):
            started = time.perf_counter()
            a @ b
            sync()
            best = min(best, time.perf_counter() - started)
        rates[f"{m}x{k}x{n}"] = round(2 * m * k * n / best / 1e9, 1)
    return {"gflops": rates, "reference": max(rates.values())}


def _is_linear(module: nn.Module) -> bool:
    return isinstance(module, nn.Linear) or (type(module).__name__ == "Conv1D"
                                             and hasattr(module, "nf"))


class FlopCounter:
    """Counts a training step's matmul FLOPs with forward hooks (see the module docstring).
    LoRA layers add their A and B (trained) on the rows their wrapper saw; PEFT's own A/B are
    nn.Linear modules and are counted as such."""

    def __init__(self, model: nn.Module):
        self.flops = 0
        self._handles = []
        for module in model.modules():
            if _is_linear(module):
                self._handles.append(module.register_forward_hook(self._linear_hook))
            elif hasattr(module, "lora_A") and isinstance(module.lora_A, nn.Parameter):
                self._handles.append(module.register_forward_hook(self._lora_hook))

    @staticmethod
    def _cost(numel: int, rows: int, trained: bool) -> int:
        return (2 + (4 if trained else 2)) * numel * rows

    def _linear_hook(self, module, inputs, output) -> None:
        x, w = inputs[0], module.weight
        in_features = w.shape[0] if type(module).__name__ == "Conv1D" else w.shape[1]
        self.flops += self._cost(w.numel(), x.numel() // in_features, w.requires_grad)

    def _lora_hook(self, module, inputs, output) -> None:
        if getattr(module, "merged", False):
            return
        x = inputs[0]
        rows = x.numel() // x.shape[-1]
        self.flops += self._cost(module.lora_A.numel() + module.lora_B.numel(), rows, True)

    def take(self) -> int:
        """FLOPs counted since the last call."""
        flops, self.flops = self.flops, 0
        return flops

    def remove(self) -> None:
        for handle in self._handles:
            handle.remove()


def peak_rss_gb() -> float:
    """This process's peak resident memory since start or the last `reset_peak_rss` (Linux's
    VmHWM; elsewhere getrusage's lifetime peak)."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 2**20  # kB
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def reset_peak_rss() -> bool:
    """Reset the peak to the current RSS (Linux >= 4.0: "5" to /proc/self/clear_refs), so a
    step's peak is not hidden under the model build's; False where that is not possible."""
    try:
        with open("/proc/self/clear_refs", "w") as refs:
            refs.write("5")
        return True
    except OSError:
        return False
