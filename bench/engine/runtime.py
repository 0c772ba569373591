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


@dataclass
class Engine:
    """Where and how tensors are computed.

    Attributes:
        device: ``cpu`` or ``cuda[:i]``.
        precision: ``bf16`` (autocast on CUDA) or ``fp32``.
        eval_batch_size: Batch size for feature extraction and prediction.
        log_every: Training steps between progress lines (progress costs a host sync).
        data_workers: DataLoader processes decoding image files (0: in this process).
    """

    device: torch.device
    precision: str = "fp32"
    eval_batch_size: int = 256
    data_workers: int = 0
    log_every: int = 50
    started: float = field(default_factory=time.perf_counter)

    @classmethod
    def create(
        cls,
        device: str = "auto",
        precision: str = "auto",
        threads: int | None = None,
        eval_batch_size: int = 256,
        data_workers: int = 0,
    ) -> Engine:
        """Resolves ``auto`` settings: CUDA if available, bf16 autocast on CUDA only.

        Args:
            device: ``auto``, ``cpu``, ``cuda`` or ``cuda:i``.
            precision: ``auto``, ``bf16`` or ``fp32``.
            threads: CPU threads for torch (defaults to the job's allotted cores,
                ``SLURM_CPUS_PER_TASK`` / Snakemake ``threads``, else torch's default).
            eval_batch_size: Batch size for inference.
            data_workers: DataLoader processes decoding image files.
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
        if resolved.type == "cuda":
            torch.backends.cuda.matmul.allow_tf32 = True
            torch.backends.cudnn.allow_tf32 = True
        return cls(
            device=resolved,
            precision=precision,
            eval_batch_size=eval_batch_size,
            data_workers=int(data_workers),
        )

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
        }
        if self.device.type == "cuda":
            info["gpu"] = torch.cuda.get_device_name(self.device)
        return info
