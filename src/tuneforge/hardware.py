"""The machine as tuneforge sees it, and the one place that turns `auto` into a dtype and precision.

Why a module of its own: bf16 is ~4-8× faster than fp32 on CPUs that run it natively (AMX-BF16 on
Intel Sapphire Rapids, AVX512-BF16 on AMD Zen 4/5) and ~70-100× *slower* where torch has to emulate
it (AVX2-only CPUs, most laptops and CI runners). A hard-coded bf16 makes a 10-minute demo take
hours on the second kind, a hard-coded fp32 throws away 4× on the first. So every place that loads,
trains or generates asks `resolve_dtype` / `resolve_precision`; an explicit setting always wins.

The rule (`decide_precision`, a pure function so tests can feed it fake flags):
- CUDA: bf16 where the GPU supports it, else fp32 (fp16 autocast without loss scaling is unsafe
  to default to; an older GPU can still be asked for `model.dtype=float16` explicitly).
- CPU: bf16 only when the CPU flags list `amx_bf16` or `avx512_bf16` *and* a short matmul probe
  in this process measures bf16 faster than fp32 (torch may be told to use fewer ISA extensions,
  e.g. ATEN_CPU_CAPABILITY=avx2, and then the flags alone would lie). Otherwise fp32.
The probe costs ~0.3 s and is cached per process and on disk (keyed by CPU, flags, torch version
and the ISA-limiting environment variables).
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import re
import sys
import time
from dataclasses import asdict, dataclass
from functools import cache, lru_cache
from pathlib import Path

ISA_FLAGS = (
    "avx2",
    "fma",
    "avx512f",
    "avx512_bf16",
    "avx512_fp16",
    "avx512_vnni",
    "avx_vnni",
    "amx_tile",
    "amx_bf16",
    "amx_int8",
    "neon",
    "asimd",
    "sve",
    "bf16",
)
NATIVE_BF16_FLAGS = ("amx_bf16", "avx512_bf16")
AUTO = "auto"
DTYPE_NAMES = {
    "bfloat16": "bfloat16",
    "bf16": "bfloat16",
    "float32": "float32",
    "fp32": "float32",
    "float16": "float16",
    "fp16": "float16",
}
PRECISION_OF_DTYPE = {"bfloat16": "bf16", "float32": "fp32", "float16": "fp32"}
# Environment variables that change which kernels torch/oneDNN run: part of the probe cache key.
_ISA_ENV = ("ATEN_CPU_CAPABILITY", "ONEDNN_MAX_CPU_ISA", "DNNL_MAX_CPU_ISA", "OMP_NUM_THREADS")


@dataclass(frozen=True)
class CPUInfo:
    model: str
    flags: tuple[str, ...]  # the ISA flags of interest that this CPU has (see ISA_FLAGS)
    physical_cores: int
    logical_cpus: int


@dataclass(frozen=True)
class PrecisionChoice:
    """What `auto` means on one device: the parameter dtype, the autocast precision, and why."""

    device: str
    dtype: str  # bfloat16 | float32
    precision: str  # bf16 | fp32
    reason: str


@lru_cache(maxsize=1)
def cpu_info() -> CPUInfo:
    """CPU model, ISA flags and core counts (Linux /proc/cpuinfo; `platform` elsewhere)."""
    model, flags, cores = platform.processor() or platform.machine(), set(), set()
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        text = ""
    physical_id = "0"
    for line in text.splitlines():
        key, _, value = line.partition(":")
        key, value = key.strip(), value.strip()
        if key == "model name":
            model = value
        elif key in ("flags", "Features"):
            flags.update(value.split())
        elif key == "physical id":
            physical_id = value
        elif key == "core id":
            cores.add((physical_id, value))
    logical = os.cpu_count() or 1
    return CPUInfo(
        model=model,
        flags=tuple(f for f in ISA_FLAGS if f in flags),
        physical_cores=len(cores) or logical,
        logical_cpus=logical,
    )


def matmul_gflops(dtype: str = "float32", n: int = 512, seconds: float = 0.15) -> float:
    """Best sustained n×n matmul rate of this process on the CPU (GFLOP/s)."""
    import torch

    a = torch.randn(n, n, dtype=getattr(torch, dtype))
    b = torch.randn(n, n, dtype=getattr(torch, dtype))
    a @ b  # warm-up: first call selects and JITs kernels
    best, deadline = float("inf"), time.perf_counter() + seconds
    while True:
        t = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - t)
        if time.perf_counter() > deadline:
            return 2 * n**3 / best / 1e9


def decide_precision(
    device_type: str, cpu_flags: tuple[str, ...] | set[str] = (), cuda_bf16: bool = False, probe=None
) -> PrecisionChoice:
    """The rule behind `auto` (pure: the flags and the probe are passed in).

    Args:
        device_type: "cuda" or "cpu" (anything else is treated as a CPU-like device: fp32).
        cpu_flags: the CPU's ISA flags.
        cuda_bf16: whether the CUDA device supports bf16.
        probe: callable returning (bf16 GFLOP/s, fp32 GFLOP/s), called only when the flags say
            bf16 is native.
    """
    bf16 = PrecisionChoice(device_type, "bfloat16", "bf16", "")
    fp32 = PrecisionChoice(device_type, "float32", "fp32", "")
    if device_type == "cuda":
        if cuda_bf16:
            return _why(bf16, "the GPU supports bf16")
        return _why(fp32, "the GPU has no bf16 support")
    if device_type != "cpu":
        return _why(fp32, f"no bf16 rule for device '{device_type}'")
    native = [f for f in NATIVE_BF16_FLAGS if f in cpu_flags]
    if not native:
        return _why(
            fp32, "the CPU has no native bf16 (no amx_bf16/avx512_bf16): torch would emulate it, ~70x slower than fp32"
        )
    if probe is None:
        return _why(bf16, f"the CPU has {'+'.join(native)}")
    rate_bf16, rate_fp32 = probe()
    verdict = f"the CPU has {'+'.join(native)}; measured bf16 {rate_bf16:.0f} vs fp32 {rate_fp32:.0f} GFLOP/s"
    return _why(bf16 if rate_bf16 > rate_fp32 else fp32, verdict)


def _why(choice: PrecisionChoice, reason: str) -> PrecisionChoice:
    return PrecisionChoice(choice.device, choice.dtype, choice.precision, reason)


def cache_dir() -> Path:
    """Where tuneforge keeps machine-level caches (converted models, the probe): $TUNEFORGE_CACHE
    or ~/.cache/tuneforge."""
    return Path(os.environ.get("TUNEFORGE_CACHE", Path.home() / ".cache" / "tuneforge"))


def _probe_cache_path() -> Path:
    return cache_dir() / "hardware.json"


def _probe_key() -> str:
    import torch

    info = cpu_info()
    parts = [
        info.model,
        ",".join(info.flags),
        torch.__version__,
        str(torch.get_num_threads()),
        *(f"{k}={os.environ.get(k, '')}" for k in _ISA_ENV),
    ]
    return hashlib.sha256("|".join(parts).encode()).hexdigest()[:16]


def _cpu_probe() -> tuple[float, float]:
    """(bf16, fp32) matmul GFLOP/s, cached on disk for this CPU + torch + ISA settings."""
    path, key = _probe_cache_path(), _probe_key()
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        data = {}
    if key in data:
        return data[key]["bf16"], data[key]["fp32"]
    rates = {"bf16": matmul_gflops("bfloat16"), "fp32": matmul_gflops("float32")}
    data[key] = rates | {"cpu": cpu_info().model}
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps(data, indent=1))
        os.replace(tmp, path)
    except OSError:
        pass  # a read-only cache only costs the probe again next time
    return rates["bf16"], rates["fp32"]


def _device_type(device: str) -> str:
    import torch

    if device in ("", AUTO):
        return "cuda" if torch.cuda.is_available() else "cpu"
    return device.split(":")[0]


def auto_precision(device: str = AUTO) -> PrecisionChoice:
    """What `auto` resolves to on `device` ("auto", "cpu", "cuda", "cuda:1", ...). Silent: the choice
    is printed by `announce_precision` when training or decoding starts, so a command refused
    while its inputs are checked prints its one error line and nothing else."""
    kind = _device_type(device)
    _decided.add(kind)
    return _auto_precision_of(kind)


_decided: set[str] = set()
_announced: set[str] = set()


def announce_precision(device: str = AUTO) -> None:
    """Print once per device kind what `auto` chose and why, if this process let `auto` choose."""
    kind = _device_type(device)
    if kind not in _decided or kind in _announced:
        return
    _announced.add(kind)
    choice = _auto_precision_of(kind)
    print(
        f"tuneforge: precision auto -> {choice.precision} (model dtype {choice.dtype}) on {kind}: {choice.reason}",
        file=sys.stderr,
        flush=True,
    )


@cache
def _auto_precision_of(kind: str) -> PrecisionChoice:
    import torch

    cuda_bf16 = kind == "cuda" and torch.cuda.is_available() and torch.cuda.is_bf16_supported()
    return decide_precision(kind, cpu_info().flags, cuda_bf16, _cpu_probe if kind == "cpu" else None)


def resolve_dtype(dtype: str, device: str = AUTO) -> str:
    """A config's model dtype made concrete: `auto` → what the hardware runs natively; an explicit
    name (bf16/bfloat16/fp32/float32/fp16/float16) is kept, spelled as torch does."""
    from tuneforge.errors import UnknownNameError, suggest

    check_device_available(device)  # every load and generate site comes through here, before writing
    if dtype == AUTO:
        return auto_precision(device).dtype
    if dtype not in DTYPE_NAMES:
        raise UnknownNameError(
            f"unknown dtype '{dtype}'.{suggest(dtype, [AUTO, *DTYPE_NAMES])} Available: auto, {', '.join(DTYPE_NAMES)}"
        )
    return DTYPE_NAMES[dtype]


_DEVICE = re.compile(r"^(?:auto|cpu|mps|cuda(?::\d+)?)$")


def check_device_available(device: str) -> None:
    """A GPU device this machine has: 'cuda' without a CUDA GPU (or cuda:N past the last one) is a
    ConfigError saying so, not torch's "Torch not compiled with CUDA enabled" deep in a model load."""
    import torch

    from tuneforge.errors import ConfigError

    kind, _, index = str(device).partition(":")
    fix = "Set the device to cpu or auto (model.device=cpu for train, device=cpu for eval and safety)"
    if kind == "cuda":
        n = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if n == 0:
            build = "a CPU-only build" if torch.version.cuda is None else f"built for CUDA {torch.version.cuda}"
            raise ConfigError(
                f"device '{device}' is not available: torch {torch.__version__} ({build}) sees no CUDA GPU. {fix}"
            )
        if index.isdigit() and int(index) >= n:
            raise ConfigError(
                f"device '{device}' is not available: this machine has {n} CUDA GPU(s), cuda:0 to cuda:{n - 1}. {fix}"
            )
    if kind == "mps" and not torch.backends.mps.is_available():
        raise ConfigError(f"device 'mps' is not available: torch sees no Apple GPU (MPS) here. {fix}")


def check_device_dtype(device: str, dtype: str, where: str = "") -> None:
    """A config's device and dtype spelled right, checked when the config is read (before any
    model loads or file is written). Raises ConfigError naming the key and the choices."""
    from tuneforge.errors import ConfigError, suggest

    pre = f"{where}." if where else ""
    if not _DEVICE.match(str(device)):
        raise ConfigError(
            f"{pre}device '{device}' unknown.{suggest(str(device), ['auto', 'cpu', 'cuda', 'mps'])} "
            "Use auto, cpu, cuda, cuda:N or mps"
        )
    if dtype != AUTO and dtype not in DTYPE_NAMES:
        raise ConfigError(
            f"{pre}dtype '{dtype}' unknown.{suggest(str(dtype), [AUTO, *DTYPE_NAMES])} "
            f"Use auto, {', '.join(DTYPE_NAMES)}"
        )


def resolve_precision(precision: str, device: str = AUTO) -> str:
    """A training/eval autocast precision made concrete: `auto` → bf16 or fp32 for this hardware."""
    return auto_precision(device).precision if precision == AUTO else precision


MAX_THREADS_PER_CPU = 4  # more threads than 4 per logical CPU only thrash (99999 made `tuneforge env` hang)


def thread_setting(name: str) -> int | None:
    """The thread count the environment variable `name` asks for (None when unset). A value that is
    not a whole number from 1 to MAX_THREADS_PER_CPU × the logical CPUs is a ConfigError naming it;
    an OpenMP list ("4,2": threads per nesting level) is checked element by element."""
    from tuneforge.errors import ConfigError

    raw = os.environ.get(name, "").strip()
    if not raw:
        return None
    limit = MAX_THREADS_PER_CPU * (os.cpu_count() or 1)
    counts = [int(x) if re.fullmatch(r"\s*[0-9]+\s*", x) else 0 for x in raw.split(",")]
    if not all(1 <= n <= limit for n in counts):
        raise ConfigError(
            f"{name}={raw!r} is not a usable thread count: give a whole number from 1 to {limit} "
            f"({MAX_THREADS_PER_CPU} × this machine's {os.cpu_count()} logical CPUs), or unset {name}"
        )
    return counts[0]


def set_threads() -> int:
    """torch intra-op threads = physical cores, unless the user chose (OMP_NUM_THREADS or
    TUNEFORGE_THREADS): hyper-threads share one core's matmul units and only add contention.
    Both variables are checked before torch is imported: OpenMP reads OMP_NUM_THREADS when it loads."""
    chosen, omp = thread_setting("TUNEFORGE_THREADS"), thread_setting("OMP_NUM_THREADS")
    import torch

    if chosen:
        torch.set_num_threads(chosen)
    elif not omp:
        torch.set_num_threads(max(1, cpu_info().physical_cores))
    return torch.get_num_threads()


def hardware_summary(device: str = AUTO) -> dict:
    """Short record of where a run ran (saved in manifests, metrics.json and benchmark JSON)."""
    import torch

    info, choice = cpu_info(), auto_precision(device)
    out = {
        "cpu": info.model,
        "isa": list(info.flags),
        "physical_cores": info.physical_cores,
        "torch_threads": torch.get_num_threads(),
        "auto_precision": choice.precision,
        "auto_reason": choice.reason,
        "torch": torch.__version__,
    }
    if torch.cuda.is_available():
        out["gpus"] = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
    return out


def describe_environment(measure: bool = True) -> dict:
    """Everything `tuneforge env` prints: the machine, what `auto` picks and why, library versions."""
    import torch

    info = cpu_info()
    env = {
        "tuneforge": _version("tuneforge"),
        "python": platform.python_version(),
        "platform": platform.platform(),
        **asdict(info),
        "torch_threads": torch.get_num_threads(),
        "torch_cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "cuda": torch.version.cuda if torch.cuda.is_available() else None,
        "gpus": [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
        if torch.cuda.is_available()
        else [],
    }
    choice = auto_precision(AUTO)
    env["auto"] = {
        "device": choice.device,
        "dtype": choice.dtype,
        "precision": choice.precision,
        "reason": choice.reason,
    }
    if measure:
        env["matmul_gflops"] = {
            "float32": round(matmul_gflops("float32", 1024, 0.5), 1),
            "bfloat16": round(matmul_gflops("bfloat16", 1024, 0.5), 1),
        }
    env["versions"] = {
        pkg: _version(pkg)
        for pkg in ("torch", "transformers", "peft", "accelerate", "datasets", "trl", "sentence-transformers")
    }
    env["env"] = {
        k: os.environ[k]
        for k in (*_ISA_ENV, "TUNEFORGE_THREADS", "TUNEFORGE_CACHE", "CUDA_VISIBLE_DEVICES")
        if k in os.environ
    }
    return env


def _version(pkg: str) -> str | None:
    import importlib.metadata as md

    try:
        return md.version(pkg)
    except md.PackageNotFoundError:
        return None


def format_environment(env: dict) -> str:
    """`tuneforge env` as text to paste into a bug report."""
    a = env["auto"]
    lines = [
        f"- tuneforge: {env['tuneforge']}",
        f"- Python: {env['python']}",
        f"- Platform: {env['platform']}",
        f"- CPU: {env['model']}",
        f"- ISA flags: {' '.join(env['flags']) or 'none of ' + ' '.join(ISA_FLAGS)}",
        f"- torch CPU capability: {env['torch_cpu_capability']}",
        f"- Cores: {env['physical_cores']} physical, {env['logical_cpus']} logical; torch threads "
        f"{env['torch_threads']}",
        f"- GPUs: {', '.join(env['gpus']) or 'none'}" + (f" (CUDA {env['cuda']})" if env["cuda"] else ""),
        f"- Precision auto: {a['precision']} (model dtype {a['dtype']}) on {a['device']} — {a['reason']}",
    ]
    if "matmul_gflops" in env:
        m = env["matmul_gflops"]
        lines.append(
            f"- Matmul 1024² (measured now): float32 {m['float32']} GFLOP/s, bfloat16 {m['bfloat16']} "
            f"GFLOP/s (bf16/fp32 = {m['bfloat16'] / max(m['float32'], 1e-9):.2f})"
        )
    lines.append("- Versions: " + ", ".join(f"{k} {v or 'not installed'}" for k, v in env["versions"].items()))
    if env["env"]:
        lines.append("- Environment: " + ", ".join(f"{k}={v}" for k, v in env["env"].items()))
    return "\n".join(lines)


def distributed_state():
    """accelerate's per-process state (which process this is, of how many). Without a GPU it is
    asked for CPU explicitly: otherwise a `torchrun` / `accelerate launch` of several CPU processes
    would not join a gloo group, and each would believe it is alone."""
    import torch
    from accelerate import PartialState

    return PartialState(cpu=not torch.cuda.is_available())


def cpu_ticks() -> list[int] | None:
    """Aggregate CPU tick counters from /proc/stat (Linux), or None elsewhere."""
    try:
        with open("/proc/stat") as f:
            return [int(x) for x in f.readline().split()[1:]]
    except (OSError, ValueError):
        return None


def steal_percent(before: list[int] | None, after: list[int] | None) -> float | None:
    """Share of CPU time a hypervisor took from this VM between two readings: on a shared VM it
    explains why the same run takes longer on one day than another."""
    if not before or not after or len(before) < 8:
        return None
    delta = [b - a for a, b in zip(before, after)]
    return round(100 * delta[7] / max(sum(delta), 1), 1)
