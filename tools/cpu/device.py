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


def _none(*_args, **_kwargs):
    return None


def _zero(*_args, **_kwargs):
    return 0


class _DeviceModule:
    """What verl calls on ``get_torch_device()``: ``torch.cpu`` plus the CUDA memory/RNG calls it makes."""

    def __getattr__(self, name):
        return getattr(torch.cpu, name)

    empty_cache = ipc_collect = reset_peak_memory_stats = set_per_process_memory_fraction = _none
    memory_allocated = memory_reserved = max_memory_allocated = max_memory_reserved = _zero

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

    @staticmethod
    def manual_seed(seed):
        torch.manual_seed(seed)

    manual_seed_all = manual_seed

    @staticmethod
    def get_device_name(*_args, **_kwargs):
        return NAME

    @staticmethod
    def device_count():
        return 1

    @staticmethod
    def is_available():
        return True


DEVICE_MODULE = _DeviceModule()


@PlatformRegistry.register(platform=NAME)
class PlatformCPU(PlatformBase):
    """Selected by ``VERL_PLATFORM=cpu`` only (never auto-detected)."""

    device_name = vendor_name = NAME

    @property
    def device_module(self):
        return DEVICE_MODULE

    def is_available(self) -> bool:
        return True

    def is_platform_available(self, use_smi_check=False) -> bool:
        return False  # auto-detection must never pick the CPU for a GPU machine

    def current_device(self):
        # verl hands get_device_id() to .to()/device=; an int would mean an accelerator index
        return torch.device(NAME)

    def device_count(self) -> int:
        return 1

    set_device = synchronize = set_allocator_settings = empty_cache = profiler_start = profiler_stop = cudart = _none

    def manual_seed(self, seed: int) -> None:
        torch.manual_seed(seed)

    manual_seed_all = manual_seed

    def get_device_capability(self, device_index: int = 0):
        return None, None

    def communication_backend_name(self) -> str:
        return "gloo"

    def visible_devices_envvar(self) -> str:
        return "CUDA_VISIBLE_DEVICES"

    @contextlib.contextmanager
    def nvtx_range(self, msg: str):
        yield

    def ray_resource_name(self) -> str:
        return "GPU"

    def ray_noset_envvars(self) -> list[str]:
        return ["RAY_EXPERIMENTAL_NOSET_CUDA_VISIBLE_DEVICES"]

    def is_ipc_supported(self) -> bool:
        return False


def dedupe_backend(backend):
    """``"cpu:gloo,cpu:gloo"`` -> ``"cpu:gloo"``: one backend per device, as torch requires.

    verl builds ``f"cpu:gloo,{device}:{backend}"`` for its process groups, which repeats "cpu" here.
    """
    if not isinstance(backend, str) or "," not in backend:
        return backend
    kept: dict[str, str] = {}
    for part in backend.split(","):
        kept.setdefault(part.split(":", 1)[0], part)
    return ",".join(kept.values())


def _install_backend_dedupe() -> None:
    original = dist.init_process_group

    def init_process_group(backend=None, *args, **kwargs):
        return original(dedupe_backend(backend), *args, **kwargs)

    dist.init_process_group = init_process_group


_install_backend_dedupe()
