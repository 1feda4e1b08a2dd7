"""A verl platform for device "cpu": gloo for collectives, no-op memory and stream calls.

Ray's "GPU" resource is kept as the scheduling unit: the run fakes it with ``ray_kwargs.ray_init.num_gpus``,
so verl's resource-pool checks and worker placement work unchanged.
"""

from __future__ import annotations

import contextlib

import torch
import torch.distributed as dist
from verl.plugin.platform import PlatformBase, PlatformRegistry

NAME = "cpu"


def _returns(value):
    """A method (or function) that takes anything and returns ``value``."""
    return lambda *_args, **_kwargs: value


_none, _zero = _returns(None), _returns(0)


class _DeviceModule:
    """What verl calls on ``get_torch_device()``: ``torch.cpu`` plus the CUDA memory/RNG calls it makes."""

    def __getattr__(self, name):
        return getattr(torch.cpu, name)

    empty_cache = ipc_collect = reset_peak_memory_stats = set_per_process_memory_fraction = _none
    memory_allocated = memory_reserved = max_memory_allocated = max_memory_reserved = _zero
    get_device_name, device_count, is_available = _returns(NAME), _returns(1), _returns(True)
    manual_seed = manual_seed_all = staticmethod(torch.manual_seed)

    @staticmethod
    def mem_get_info(*_args, **_kwargs):
        import psutil

        memory = psutil.virtual_memory()
        return memory.available, memory.total

    @staticmethod
    def get_rng_state(*_args, **_kwargs):
        return torch.get_rng_state()

    @staticmethod
    def set_rng_state(state, *_args, **_kwargs):
        torch.set_rng_state(state)


DEVICE_MODULE = _DeviceModule()


@PlatformRegistry.register(platform=NAME)
class PlatformCPU(PlatformBase):
    """Selected by ``VERL_PLATFORM=cpu`` only (never auto-detected: ``is_platform_available`` is False)."""

    device_name = vendor_name = NAME
    device_module = property(_returns(DEVICE_MODULE))
    set_device = synchronize = set_allocator_settings = empty_cache = profiler_start = profiler_stop = cudart = _none
    manual_seed = manual_seed_all = staticmethod(torch.manual_seed)
    is_available = _returns(True)
    is_platform_available = _returns(False)  # auto-detection must never pick the CPU for a GPU machine
    device_count = _returns(1)
    # verl hands get_device_id() to .to()/device=; an int would mean an accelerator index
    current_device = _returns(torch.device(NAME))
    get_device_capability = _returns((None, None))
    communication_backend_name = _returns("gloo")
    ray_resource_name = _returns("GPU")
    visible_devices_envvar = _returns("CUDA_VISIBLE_DEVICES")
    ray_noset_envvars = _returns(["RAY_EXPERIMENTAL_NOSET_CUDA_VISIBLE_DEVICES"])
    is_ipc_supported = _returns(False)

    @contextlib.contextmanager
    def nvtx_range(self, msg: str):
        yield


def dedupe_backend(backend):
    """``"cpu:gloo,cpu:gloo"`` -> ``"cpu:gloo"``: verl builds ``f"cpu:gloo,{device}:{backend}"`` for its process
    groups, which repeats "cpu" here, and torch allows one backend per device."""
    if not isinstance(backend, str) or "," not in backend:
        return backend
    kept: dict[str, str] = {}
    for part in backend.split(","):
        kept.setdefault(part.split(":", 1)[0], part)
    return ",".join(kept.values())


_init_process_group = dist.init_process_group


def _init_deduped(backend=None, *args, **kwargs):
    return _init_process_group(dedupe_backend(backend), *args, **kwargs)


dist.init_process_group = _init_deduped
