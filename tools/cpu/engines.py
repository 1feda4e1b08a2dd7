"""verl's own FSDP engines, registered for device "cpu" (verl registers them for cuda/npu only)."""

from __future__ import annotations

from verl.workers.engine import EngineRegistry
from verl.workers.engine.fsdp import transformer_impl

_ENGINES = {"language_model": "FSDPEngineWithLMHead", "value_model": "FSDPEngineWithValueHead"}


def register() -> None:
    """Once per process (``tools.cpu.backend`` calls it on import)."""
    for model_type, class_name in _ENGINES.items():
        engine_cls = getattr(transformer_impl, class_name)
        EngineRegistry.register(model_type=model_type, backend=["fsdp", "fsdp2"], device="cpu")(engine_cls)
    _unpin_offload_policy()


def _unpin_offload_policy() -> None:
    """The reference model's FSDP2 engine asks for ``CPUOffloadPolicy(pin_memory=True)``; pinning needs an
    accelerator, and on a CPU the policy only has to keep the parameters where they already are."""
    policy_cls = transformer_impl.CPUOffloadPolicy

    def cpu_offload_policy(*args, pin_memory=True, **kwargs):
        return policy_cls(*args, pin_memory=False, **kwargs)

    transformer_impl.CPUOffloadPolicy = cpu_offload_policy
