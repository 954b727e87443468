"""lora_core: LoRA (Hu et al., 2021) and the paper's baselines, in plain PyTorch.

No Hydra, no I/O beyond adapter files: `from lora_core import apply_lora, LoRAConfig` works in
any project. See README.md for the formula, defaults and the official code this follows.
"""
from .adapters import (Adapter, AdaptedBlock, AdaptedModule, LayerNormAdapter,
                       adapter_parameter_count, apply_adapters, bottleneck_for_budget)
from .counting import ParamCount, count_parameters
from .families import FAMILIES, WEIGHT_TYPES, Family, family_of
from .layers import LoRAEmbedding, LoRALayer, LoRALinear
from .methods import (METHODS, SUPPORTED, apply_method, lora_adapter_config, prepare_for_inference,
                      register_method, target_ranks)
from .multi_adapter import (AdapterState, adapter_names, adapter_routing, add_adapter,
                            set_adapter, switch_merged)
from .routed_linear import LowRankUpdate, RoutedLinear
from .partial import train_biases, train_top_blocks
from .prefix_methods import PrefixEmbedding, PrefixLayer, apply_prefix_embedding, apply_prefix_layer
from .lora import (LoRAConfig, apply_lora, lora_layers, mark_only_lora_as_trainable,
                   merge_and_unload, merge_lora, set_trainable_modules, unmerge_lora)
from .state import (adapter_state_dict, export_peft, import_peft, init_from_adapter, load_adapter,
                    read_adapter_config, save_adapter)

__all__ = [
    "ParamCount", "count_parameters", "FAMILIES", "WEIGHT_TYPES", "Family", "family_of",
    "LoRAEmbedding", "LoRALayer", "LoRALinear", "LoRAConfig", "apply_lora", "lora_layers",
    "mark_only_lora_as_trainable", "merge_and_unload", "merge_lora", "set_trainable_modules",
    "unmerge_lora", "adapter_state_dict", "export_peft", "import_peft", "load_adapter",
    "read_adapter_config", "save_adapter", "init_from_adapter", "METHODS", "apply_method", "register_method", "prepare_for_inference",
    "lora_adapter_config", "target_ranks",
]
# The baselines (kept as a separate list so the LoRA core's exports read on their own).
__all__ += [
    "SUPPORTED", "Adapter", "AdaptedBlock", "AdaptedModule", "LayerNormAdapter",
    "adapter_parameter_count", "apply_adapters", "bottleneck_for_budget", "train_biases",
    "train_top_blocks", "PrefixEmbedding", "PrefixLayer", "apply_prefix_embedding",
    "apply_prefix_layer",
]
# Many named adapters on one model (§4.1, §4.2 deployment): mixed batches, merged switching.
__all__ += [
    "add_adapter", "set_adapter", "adapter_routing", "switch_merged", "adapter_names",
    "AdapterState", "RoutedLinear", "LowRankUpdate",
]
