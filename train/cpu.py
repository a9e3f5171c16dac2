"""What the CPU can do for training: whether `--bf16` runs on native bfloat16 instructions."""

from __future__ import annotations

import sys
from pathlib import Path

BF16_FLAGS = ("avx512_bf16", "amx_bf16")  # /proc/cpuinfo flags of x86 CPUs with native bfloat16 math


def native_bf16(cpuinfo: str | Path = "/proc/cpuinfo") -> bool | None:
    """True where the CPU lists a bfloat16 instruction set (`BF16_FLAGS`), False where it lists its
    flags without one, None where that cannot be read (not Linux, not x86)."""
    try:
        text = Path(cpuinfo).read_text()
    except OSError:
        return None
    flags = next((line.split(":", 1)[1].split() for line in text.splitlines() if line.startswith("flags")), None)
    if flags is None:
        return None
    return any(flag in flags for flag in BF16_FLAGS)


def warn_if_bf16_is_slow(command: str, cpuinfo: str | Path = "/proc/cpuinfo") -> bool:
    """Print a warning to stderr where `--bf16` would be emulated; True if it printed one. On a CPU
    with AVX2 alone (an AMD EPYC Zen 3 measured with `benchmarks/train_speed.py`), bfloat16 autocast
    made the world model's updates 7x slower than float32 and the ball head's 11x."""
    if native_bf16(cpuinfo) is not False:
        return False
    print(f"{command}: warning: --bf16 on a CPU without native bfloat16 (no {' or '.join(BF16_FLAGS)} in "
          f"{cpuinfo}): autocast is emulated there and training runs about 7 to 11x slower than float32 "
          f"(benchmarks/train_speed.py); drop --bf16 on this machine", file=sys.stderr)
    return True
