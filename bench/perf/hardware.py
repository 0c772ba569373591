"""The device a performance run measures: its name, peak throughput and a timer."""

from __future__ import annotations

import platform
import re
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch

#: Dense bf16 tensor-core peak in TFLOP/s (no sparsity) by device-name substring, from
#: NVIDIA's data sheets; the first match wins, so the more specific names come first.
PEAK_BF16_TFLOPS = {
    "H200": 989.4,
    "H100 PCIe": 756.0,
    "H100 NVL": 835.5,
    "H100": 989.4,
    "GH200": 989.4,
    "A100": 312.0,
    "L40S": 362.1,
    "A10G": 70.0,
}


@dataclass(frozen=True)
class Device:
    """Where a measurement ran.

    Attributes:
        torch_device: The torch device.
        name: Marketing name (``NVIDIA H100 80GB HBM3``) or the CPU's model name.
        slug: ``name`` as a file name (``nvidia-h100-80gb-hbm3``, ``cpu-2-cores``).
        peak_tflops: Dense bf16 peak (None when unknown, as for CPUs): the
            denominator of MFU.
        cores: CPU cores this process may use.
    """

    torch_device: torch.device
    name: str
    slug: str
    peak_tflops: float | None
    cores: int

    @property
    def is_cuda(self) -> bool:
        return self.torch_device.type == "cuda"

    def sync(self) -> None:
        """Waits for the device's queued work (timings must not end before it)."""
        if self.is_cuda:
            torch.cuda.synchronize(self.torch_device)


def plain_autocast(device_type: str) -> torch.autocast:
    """The plain loops' precision: bf16 autocast on CUDA, full fp32 elsewhere.

    What the engine does by default on each device, so the two sides of a comparison
    run at the same precision.
    """
    if device_type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return torch.autocast("cpu", enabled=False)


def _cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as handle:
            for line in handle:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def find_device(device: str = "auto", peak_tflops: float | None = None) -> Device:
    """The device to measure and its peak.

    Args:
        device: ``auto`` (CUDA when available), ``cpu``, ``cuda`` or ``cuda:N``.
        peak_tflops: Overrides the table's peak (a device it does not list).
    """
    from bench.engine.runtime import usable_cores

    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    resolved = torch.device(device)
    cores = usable_cores()
    if resolved.type == "cuda":
        name = torch.cuda.get_device_name(resolved)
        peak = next((v for k, v in PEAK_BF16_TFLOPS.items() if k in name), None)
        slug_source = name
    else:
        name = f"{_cpu_name()} ({cores} cores)"
        peak = None
        slug_source = f"cpu {cores} cores"
    slug = re.sub(r"[^a-z0-9]+", "-", slug_source.lower()).strip("-")
    return Device(resolved, name, slug, peak_tflops or peak, cores)


def versions() -> dict[str, str]:
    """Versions of the libraries whose kernels the figures depend on."""
    import importlib.metadata as metadata

    out = {"python": platform.python_version(), "torch": torch.__version__}
    for package in ("torchvision", "open_clip_torch", "transformers", "numpy"):
        try:
            out[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            out[package] = "absent"
    out["cuda"] = torch.version.cuda or "none"
    return out


def seconds_per_call(fn: Callable[[], object], device: Device, warmup: int, repeats: int) -> float:
    """Mean wall time of ``fn()`` over ``repeats`` calls after ``warmup`` untimed ones.

    The device is synchronised before the clock starts and after the last call only,
    so queued GPU work overlaps as it does in a real loop.
    """
    for _ in range(warmup):
        fn()
    device.sync()
    start = time.perf_counter()
    for _ in range(repeats):
        fn()
    device.sync()
    return (time.perf_counter() - start) / max(1, repeats)


def count_flops(fn: Callable[[], object]) -> int:
    """FLOPs of one call of ``fn`` (matmuls and convolutions, forward and backward).

    ``nn.MultiheadAttention``'s inference fast path (a fused kernel the counter does not
    know, which would hide a ViT's QKV and output projections, a third of its FLOPs) is
    switched off while counting; the count is the model's arithmetic either way.
    """
    from torch.utils.flop_counter import FlopCounterMode

    fast_path = torch.backends.mha.get_fastpath_enabled()
    torch.backends.mha.set_fastpath_enabled(False)
    try:
        with FlopCounterMode(display=False) as counter:
            fn()
    finally:
        torch.backends.mha.set_fastpath_enabled(fast_path)
    return int(counter.get_total_flops())
