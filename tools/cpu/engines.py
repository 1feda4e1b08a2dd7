"""verl's own FSDP engines, registered for device "cpu" (verl registers them for cuda/npu only)."""

from __future__ import annotations

from verl.workers.engine import EngineRegistry
from verl.workers.engine.fsdp import transformer_impl


def register() -> None:
    """Once per process (``tools.cpu.backend`` calls it on import)."""
    for model_type, engine_cls in (("language_model", transformer_impl.FSDPEngineWithLMHead),
                                   ("value_model", transformer_impl.FSDPEngineWithValueHead)):
        EngineRegistry.register(model_type=model_type, backend=["fsdp", "fsdp2"], device="cpu")(engine_cls)
    # the reference model's FSDP2 engine asks for CPUOffloadPolicy(pin_memory=True); pinning needs an accelerator,
    # and on a CPU the policy only has to keep the parameters where they already are
    policy_cls = transformer_impl.CPUOffloadPolicy

    def cpu_offload_policy(*args, pin_memory=True, **kwargs):
        return policy_cls(*args, pin_memory=False, **kwargs)

    transformer_impl.CPUOffloadPolicy = cpu_offload_policy
