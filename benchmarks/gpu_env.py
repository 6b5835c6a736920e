"""The environment step of gpu_check.sh: torch, CUDA, the GPUs, free /dev/shm; exits 1 when
the check asks for cuda and this torch has none."""

from __future__ import annotations

import os
import shutil
import sys


def main(device: str) -> int:
    import torch

    print(f"torch {torch.__version__} | cuda build {torch.version.cuda} | CPUs {os.cpu_count()}")
    n = torch.cuda.device_count() if torch.cuda.is_available() else 0
    print(f"GPUs: {n}", *(torch.cuda.get_device_name(i) for i in range(n)))
    if os.path.isdir("/dev/shm"):
        print(f"/dev/shm free: {shutil.disk_usage('/dev/shm').free / 2**30:.1f} GiB")
    if device.startswith("cuda") and n == 0:
        print("Error: no CUDA device: this torch is a CPU build or the driver is missing "
              "(make setup installs the CPU build; install a CUDA torch to run this check)",
              file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1] if len(sys.argv) > 1 else "cuda"))
