"""Describe the machine a benchmark ran on, for the results JSON and the README table."""

from __future__ import annotations

import os
import platform
from pathlib import Path


def machine_info() -> dict[str, str | int]:
    cpu = platform.processor() or platform.machine()
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    mem_gib = 0
    meminfo = Path("/proc/meminfo")
    if meminfo.exists():
        kib = int(meminfo.read_text().split("MemTotal:")[1].split()[0])
        mem_gib = round(kib / 1024 / 1024)
    return {
        "cpu": cpu,
        "cores": os.cpu_count() or 0,
        "memory_gib": mem_gib,
        "python": platform.python_version(),
        "os": f"{platform.system()} {platform.release()}",
    }
