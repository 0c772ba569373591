"""Device, precision and determinism settings for one job."""

from __future__ import annotations

import contextlib
import os
import random
import sys
import time
from dataclasses import dataclass, field

import numpy as np
import torch


def seed_everything(seed: int, deterministic: bool = True) -> None:
    """Seeds Python, NumPy and torch (all devices).

    Args:
        seed: The cell's training seed.
        deterministic: Ask cuDNN for deterministic kernels; CPU runs are then bitwise
            reproducible, GPU runs up to the few ops without deterministic kernels.
    """
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    if deterministic:
        torch.backends.cudnn.deterministic = True
        torch.backends.cudnn.benchmark = False


def usable_cores() -> int:
    """CPU cores this process may run on (its affinity mask, else the machine's)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


# glibc's mallopt parameters (malloc.h) and the value given to both: the largest a C
# int holds, so blocks up to 2 GiB come from the reusable heap.
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3
_KEEP_BELOW_BYTES = 2**31 - 1
_GLIBC_MALLOC_VARIABLES = (
    "GLIBC_TUNABLES",
    "MALLOC_MMAP_THRESHOLD_",
    "MALLOC_TRIM_THRESHOLD_",
    "MALLOC_TOP_PAD_",
    "MALLOC_ARENA_MAX",
)
_host_allocator = "system default"


def keep_freed_host_memory() -> str:
    """Makes glibc's malloc keep freed memory for reuse instead of returning it.

    By default glibc serves a block above its mmap threshold (which adapts up to
    32 MiB) with a fresh ``mmap`` and unmaps it on ``free``, and gives the top of the
    heap back past a trim threshold. A CPU training step allocates the same large
    buffers every step (the gradient of MiniLM's word embeddings alone is 45 MiB), so
    each step faulted in fresh zeroed pages from the kernel. Raising both thresholds
    to 2 GiB keeps those blocks in the heap. Measured on the default grid's CPU jobs
    (``docs/performance.md``): page faults 2.7 million -> 0.35 million and system time
    4.4 s -> 0.9 s in a 41 s MiniLM fine-tuning job, 7% less wall time, 14% less for
    EfficientNet-Lite0; predictions bitwise the same. The price is peak memory: the
    heap keeps its high-water mark, 4% more for MiniLM, 20-40% for EfficientNet.

    Called once at the start of a ``features`` or ``fit`` job. It does nothing when
    the C library is not glibc, when another allocator is preloaded (``LD_PRELOAD``),
    or when the environment has any of glibc's malloc variables, even empty
    (``GLIBC_TUNABLES``, ``MALLOC_*_``): a user's own settings win, and
    ``GLIBC_TUNABLES=`` (empty) keeps glibc's defaults.

    Returns:
        What the process now uses, as recorded in ``run.json``'s ``hardware``:
        ``glibc, freed memory kept``, ``set by the environment`` or ``system default``.
    """
    global _host_allocator
    if any(name in os.environ for name in _GLIBC_MALLOC_VARIABLES) or "malloc" in (
        os.environ.get("LD_PRELOAD", "")
    ):
        _host_allocator = "set by the environment"
        return _host_allocator
    import ctypes

    try:
        libc = ctypes.CDLL(None)
        libc.gnu_get_libc_version  # noqa: B018 (only glibc has it: AttributeError elsewhere)
    except (OSError, AttributeError):
        return _host_allocator
    if libc.mallopt(_M_MMAP_THRESHOLD, _KEEP_BELOW_BYTES) and libc.mallopt(
        _M_TRIM_THRESHOLD, _KEEP_BELOW_BYTES
    ):
        _host_allocator = "glibc, freed memory kept"
    return _host_allocator


@dataclass
class Engine:
    """Where and how tensors are computed.

    Attributes:
        device: ``cpu`` or ``cuda[:i]``.
        precision: ``bf16`` (autocast on CUDA) or ``fp32``.
        eval_batch_size: Batch size for feature extraction and prediction.
        log_every: Training steps between progress lines (progress costs a host sync).
        data_workers: DataLoader processes reading image files (0: in this process).
        decode: Where JPEG files are decoded and resized: ``host`` (PIL in the data
            workers) or ``device`` (``torchvision.io.decode_jpeg`` on ``device``: nvJPEG
            on a GPU; the workers only read the files' bytes).
        compile: Compile the backbone's encoder with ``torch.compile`` in training and
            inference (:meth:`prepare_model`).
        channels_last: Convert convolutional backbones to channels-last memory layout
            (faster cuDNN kernels under bf16; on by default on CUDA only).
    """

    device: torch.device
    precision: str = "fp32"
    eval_batch_size: int = 256
    data_workers: int = 0
    decode: str = "host"
    compile: bool = False
    channels_last: bool = False
    log_every: int = 50
    started: float = field(default_factory=time.perf_counter)

    @classmethod
    def create(
        cls,
        device: str = "auto",
        precision: str = "auto",
        threads: int | None = None,
        eval_batch_size: int = 256,
        data_workers: int | str = 0,
        decode: str = "auto",
        compile: bool = False,
    ) -> Engine:
        """Resolves ``auto`` settings for the device found.

        On CUDA: bf16 autocast, TF32 matmuls, channels-last convolutions, image files
        decoded on the GPU and ``auto`` data workers = the job's cores minus one (at
        most 8). On CPU: fp32, decoding with PIL, data decoded in the job's process.

        Args:
            device: ``auto``, ``cpu``, ``cuda`` or ``cuda:i``.
            precision: ``auto``, ``bf16`` or ``fp32``.
            threads: CPU threads for torch (defaults to the job's allotted cores,
                ``SLURM_CPUS_PER_TASK`` / Snakemake ``threads``, else torch's default).
            eval_batch_size: Batch size for inference.
            data_workers: DataLoader processes reading image files, or ``auto``.
            decode: ``auto``, ``host`` or ``device`` (see the class).
            compile: ``torch.compile`` the encoder.
        """
        if device == "auto":
            device = "cuda" if torch.cuda.is_available() else "cpu"
        resolved = torch.device(device)
        if resolved.type == "cuda" and not torch.cuda.is_available():
            raise RuntimeError("device 'cuda' requested but torch sees no GPU; set device: cpu")
        if precision == "auto":
            precision = "bf16" if resolved.type == "cuda" else "fp32"
        if precision not in ("bf16", "fp32"):
            raise ValueError(f"precision must be auto, bf16 or fp32, got {precision!r}")
        if threads:
            torch.set_num_threads(int(threads))
        on_gpu = resolved.type == "cuda"
        if on_gpu:
            torch.backends.cuda.matmul.allow_tf32 = True
            torch.backends.cudnn.allow_tf32 = True
        if decode == "auto":
            decode = "device" if on_gpu else "host"
        if decode not in ("host", "device"):
            raise ValueError(f"decode must be auto, host or device, got {decode!r}")
        if data_workers == "auto":
            # The cores the job may use (SLURM's cgroup sets the affinity) minus the one
            # driving the GPU; a CPU job's cores are all busy with the model, so workers
            # would only compete with it.
            data_workers = min(8, max(1, usable_cores() - 1)) if on_gpu else 0
        return cls(
            device=resolved,
            precision=precision,
            eval_batch_size=eval_batch_size,
            data_workers=int(data_workers),
            decode=decode,
            compile=bool(compile),
            channels_last=on_gpu,
        )

    def prepare_model(self, model: torch.nn.Module) -> torch.nn.Module:
        """Applies the layout and compilation settings to a model, in place.

        Channels-last (``channels_last``) converts the 4-d weights of models with
        several convolutions: cuDNN then picks its NHWC kernels for them, faster
        under bf16 on tensor cores; the parameters stay the same objects, so an
        optimiser built before or after is unaffected. Compilation (``compile``)
        compiles each module :meth:`Backbone.compile_targets` names with
        ``nn.Module.compile``, which keeps parameter names and checkpoints unchanged;
        text encoders compile with dynamic shapes (batches pad to their own length).
        Calling it again on the same model does nothing more.

        Args:
            model: A backbone, or a module holding one as ``backbone``.

        Returns:
            ``model``.
        """
        if getattr(model, "_engine_prepared", False):
            return model
        backbone = model if hasattr(model, "compile_targets") else getattr(model, "backbone", None)
        convolutions = sum(isinstance(m, torch.nn.Conv2d) for m in model.modules())
        if self.channels_last and convolutions > 1:
            model.to(memory_format=torch.channels_last)
        if self.compile and backbone is not None:
            dynamic = backbone.modality == "text"
            for module in backbone.compile_targets():
                module.compile(dynamic=dynamic)
        model._engine_prepared = True
        return model

    def autocast(self):
        """Mixed-precision context: bf16 autocast on CUDA, a no-op otherwise."""
        if self.precision == "bf16" and self.device.type == "cuda":
            return torch.autocast("cuda", dtype=torch.bfloat16)
        return contextlib.nullcontext()

    def log(self, message: str) -> None:
        """Progress line on stderr (Snakemake sends it to the rule's log file)."""
        elapsed = time.perf_counter() - self.started
        print(f"[{elapsed:8.1f}s] {message}", file=sys.stderr, flush=True)

    def peak_memory_mb(self) -> dict[str, float]:
        """Peak resident memory of this process and peak CUDA memory, in MB."""
        from bench.provenance import peak_rss_mb

        out = {"peak_rss_mb": peak_rss_mb()}
        if self.device.type == "cuda":
            out["peak_cuda_mb"] = torch.cuda.max_memory_allocated(self.device) / 2**20
        return out

    def describe(self) -> dict[str, str | int]:
        """Hardware facts recorded in run.json."""
        info: dict[str, str | int] = {
            "device": str(self.device),
            "precision": self.precision,
            "torch_threads": torch.get_num_threads(),
            "cpu_count": os.cpu_count() or 0,
            "data_workers": self.data_workers,
            "decode": self.decode,
            "compile": int(self.compile),
            "channels_last": int(self.channels_last),
            "host_allocator": _host_allocator,
        }
        if self.device.type == "cuda":
            info["gpu"] = torch.cuda.get_device_name(self.device)
        return info
