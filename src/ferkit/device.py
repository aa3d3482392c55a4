"""Choosing the device and the fastest numerics it supports."""

from __future__ import annotations

import contextlib
import functools
import os
import platform

import torch

from .argtypes import PRECISIONS


def resolve_device(name: str = "auto", int8: bool = False) -> torch.device:
    """``auto`` -> cuda, then mps, then cpu (always cpu for an ``int8`` model, which runs only
    there); an explicit device that is absent is a ValueError."""
    if name == "auto" and int8:
        return torch.device("cpu")
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ValueError("--device cuda: no CUDA device is available")
    if name == "mps" and not (
        getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()
    ):
        raise ValueError("--device mps: no MPS device is available")
    if name not in ("cpu", "cuda", "mps") and not name.startswith("cuda:"):
        raise ValueError(f"unknown device {name!r} (auto, cpu, cuda, cuda:N or mps)")
    return torch.device(name)


@functools.cache
def cpu_has_native_bf16() -> bool:
    """True on CPUs with bf16 instructions (AVX512-BF16, AMX, Arm BF16).

    Without them oneDNN emulates bf16 and autocast is ~15x *slower* than fp32 (measured on a
    2-core AMD EPYC with AVX2 only: 11 vs 160 images/s training BKVGG12), so it must not be
    switched on blindly.
    """
    info = _cpuinfo()
    if info is None:
        return platform.machine() == "arm64" and platform.system() == "Darwin"
    return bool(set(info.split()) & {"avx512_bf16", "amx_bf16", "bf16"})


def cpu_name() -> str:
    """The CPU's model name (``/proc/cpuinfo``), else the platform's word for it."""
    for line in (_cpuinfo() or "").splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


@functools.cache
def _cpuinfo() -> str | None:
    """``/proc/cpuinfo`` (Linux), read once; None where there is none."""
    try:
        with open("/proc/cpuinfo") as fh:
            return fh.read()
    except OSError:
        return None


def machine_description(device: torch.device | None = None) -> str:
    """The machine a figure was measured on, as summaries and cards record it: the GPU, or the
    CPU with its cores, torch's threads and whether it has bf16 instructions (the CPUs ferkit
    runs on differ about 3x in training speed on that alone)."""
    if (device is None or device.type == "cuda") and torch.cuda.is_available():
        return f"{torch.cuda.get_device_name()} (torch {torch.__version__})"
    bf16 = "bf16" if cpu_has_native_bf16() else "no bf16"
    return (
        f"{os.cpu_count()}-core {cpu_name()} ({platform.machine()}, {bf16}), "
        f"{torch.get_num_threads()} threads (torch {torch.__version__})"
    )


#: Compute precisions a command takes (``--precision``); auto picks by hardware.


def autocast_dtype(device: torch.device, precision: str = "auto") -> torch.dtype | None:
    """The autocast dtype for ``precision`` (one of :data:`PRECISIONS`) on ``device``; None =
    fp32."""
    if precision == "fp32":
        return None
    if precision == "bf16":
        return torch.bfloat16
    if precision == "fp16":
        return torch.float16
    if precision != "auto":
        raise ValueError(f"unknown precision {precision!r} ({', '.join(PRECISIONS)})")
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    if device.type == "cpu" and cpu_has_native_bf16():
        return torch.bfloat16
    return None


def autocast(device: torch.device, dtype: torch.dtype | None) -> contextlib.AbstractContextManager:
    """Autocast to ``dtype`` on ``device``, or nothing when ``dtype`` is None."""
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=dtype)


def memory_format(device: torch.device) -> torch.memory_format:
    """channels_last where it speeds convolutions up (CPU oneDNN, CUDA tensor cores)."""
    return torch.channels_last if device.type in ("cpu", "cuda") else torch.contiguous_format
