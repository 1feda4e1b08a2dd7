"""The tested software is the GPU software: requirements/gpu.txt holds what verl[vllm]==0.9.1 pins, cpu.txt is the
same without torch's own packages, and the environment the tests run in has exactly those versions."""

import re
from importlib import metadata

from helpers import REPO

TORCH_FAMILY = re.compile(r"^(torch|torchvision|torchaudio|torchcodec)==")


def pins(name):
    lines = (REPO / "requirements" / name).read_text().splitlines()
    return dict(line.split("==", 1) for line in lines if "==" in line and not line.startswith("#"))


def canonical(name):
    return re.sub(r"[-_.]+", "-", name).lower()


def test_gpu_pins_are_verls_own_for_its_vllm_extra():
    """verl's wheel pins torch, vLLM and transformers for the vllm extra; the lock file keeps those exact versions."""
    gpu = pins("gpu.txt")
    wanted = {}
    for requirement in metadata.requires("verl"):
        match = re.fullmatch(r"([\w.-]+)==([\w.]+); extra == \"vllm\"", requirement)
        if match:
            wanted[canonical(match[1])] = match[2]
    assert {"torch", "vllm", "transformers"} <= set(wanted)
    assert {name: gpu[name] for name in wanted} == wanted
    assert gpu["verl"] == metadata.version("verl") == "0.9.1"


def test_cpu_pins_are_the_gpu_pins_without_torch():
    gpu = (REPO / "requirements" / "gpu.txt").read_text().splitlines()
    cpu = (REPO / "requirements" / "cpu.txt").read_text().splitlines()
    assert cpu == [line for line in gpu if not TORCH_FAMILY.match(line)]


def test_this_environment_has_the_pinned_versions():
    """Every pinned package installed here has the pinned version (make setup installs with -c requirements/cpu.txt);
    only torch's build differs from a GPU node."""
    cpu = pins("cpu.txt")
    installed = {canonical(d.metadata["Name"]): d.version for d in metadata.distributions()}
    differ = {name: (installed[name], version) for name, version in cpu.items()
              if name in installed and installed[name] != version}
    assert not differ, f"installed vs pinned: {differ} (rebuild the environment: make clean setup)"
    assert {"transformers", "verl", "ray", "tensordict", "numpy"} <= set(cpu) & set(installed)
