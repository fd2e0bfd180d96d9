"""Build llama-cpp-python for this machine, once per (version, CPU, compiler flags), and install it.

Why not a plain `pip install llama-cpp-python`: the package compiles llama.cpp with `GGML_NATIVE`, i.e. for the
CPU of the machine that builds it, and pip caches the built wheel by name and version only. A wheel built on
one processor and reused on another either crashes (AVX-512 code on a CPU without it: SIGILL) or runs without
the kernels the new CPU has. So the wheel lives in a cache folder whose name hashes the version, the Python
ABI, the CPU's feature flags and the CMake arguments; pip's own cache is bypassed (`--no-cache-dir`).

AMX: on CPUs that report AMX, ggml's AMX matmul (`ggml_backend_amx_mul_mat`) segfaults in llama-cpp-python
0.3.36 (seen on Intel Xeon guests, shipped Q4_K_M and Q8_0 alike). `-DGGML_AMX_*=OFF` does not help while
`GGML_NATIVE` is on, because `-march=native` enables the AMX instructions again; an explicit `-mno-amx-*`
after it wins in GCC. So on such CPUs the build adds those flags and keeps every other native kernel
(AVX-512, VNNI, BF16, the REPACK buffers). CPUs without AMX get exactly the upstream native build.

Stdlib only: it runs before the project's packages are installed.
    python requirements/build_llama_cpp.py --pip .venv/bin/python          # build (or reuse) and install
    python requirements/build_llama_cpp.py --print-key                     # what the cache key is made of
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import subprocess
import sys
from pathlib import Path

PACKAGE = "llama-cpp-python"
VERSION = "0.3.36"
AMX_FLAGS = ("amx_tile", "amx_int8", "amx_bf16")
NO_AMX = "-mno-amx-tile -mno-amx-int8 -mno-amx-bf16"


def _cpu_module():
    """selfdebug/generate/cpu.py, loaded by path: the project's one cpuinfo parser, stdlib only, so it works
    before the package is installed."""
    import importlib.util

    path = Path(__file__).resolve().parents[1] / "selfdebug" / "generate" / "cpu.py"
    spec = importlib.util.spec_from_file_location("_selfdebug_cpu", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def cpu_flags(cpuinfo: str | None = None) -> list[str]:
    """The feature flags of the first CPU in /proc/cpuinfo (sorted); empty where there is no such file."""
    cpu = _cpu_module()
    info = cpu.cpu_info() if cpuinfo is None else cpu.parse_cpuinfo(cpuinfo)
    return sorted(info["flags"])


def cmake_args(flags: list[str], base: str = "") -> str:
    """CMAKE_ARGS for this CPU: the user's own (`base`), plus the AMX opt-out where the CPU reports AMX."""
    args = base.strip()
    if any(f in flags for f in AMX_FLAGS):
        args = f"{args} -DCMAKE_C_FLAGS='{NO_AMX}' -DCMAKE_CXX_FLAGS='{NO_AMX}'".strip()
    return args


def cache_key(flags: list[str], args: str, python_tag: str | None = None) -> dict:
    """Everything a native build depends on; its hash names the wheel folder."""
    python_tag = python_tag or f"{sys.implementation.name}{sys.version_info[0]}{sys.version_info[1]}"
    return {"package": PACKAGE, "version": VERSION, "python": python_tag, "machine": platform.machine(),
            "cmake_args": args, "cpu_flags": flags}


def key_digest(key: dict) -> str:
    return hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]


def wheel_cache_dir(key: dict) -> Path:
    root = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "selfdebug" / "wheels"
    return root / f"{PACKAGE}-{VERSION}-{key_digest(key)}"


def build_and_install(python: str) -> Path:
    flags = cpu_flags()
    args = cmake_args(flags, os.environ.get("CMAKE_ARGS", ""))
    key = cache_key(flags, args, python_tag=_python_tag(python))
    folder = wheel_cache_dir(key)
    wheels = sorted(folder.glob("llama_cpp_python-*.whl"))
    if not wheels:
        print(f"build_llama_cpp: compiling {PACKAGE}=={VERSION} for this CPU (a few minutes); "
              f"CMAKE_ARGS={args or '(none)'}", flush=True)
        tmp = folder.with_name(folder.name + f".tmp{os.getpid()}")
        tmp.mkdir(parents=True, exist_ok=True)
        env = dict(os.environ, CMAKE_ARGS=args)
        subprocess.run([python, "-m", "pip", "wheel", "-q", "--no-deps", "--no-cache-dir",
                        "--no-binary", PACKAGE, "-w", str(tmp), f"{PACKAGE}=={VERSION}"], env=env, check=True)
        (tmp / "key.json").write_text(json.dumps(key, indent=1, sort_keys=True) + "\n")
        if folder.exists():  # another build finished first: keep it
            subprocess.run(["rm", "-rf", str(tmp)], check=True)
        else:
            tmp.rename(folder)  # atomic: a killed build never leaves a folder that looks finished
        wheels = sorted(folder.glob("llama_cpp_python-*.whl"))
    else:
        print(f"build_llama_cpp: reusing {wheels[0]} (built for this CPU and these flags)", flush=True)
    subprocess.run([python, "-m", "pip", "install", "-q", "--no-deps", "--force-reinstall", str(wheels[0])],
                   check=True)
    return wheels[0]


def _python_tag(python: str) -> str:
    out = subprocess.run([python, "-c", "import sys; print(f'{sys.implementation.name}"
                          "{sys.version_info[0]}{sys.version_info[1]}')"],
                         capture_output=True, text=True, check=True)
    return out.stdout.strip()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pip", metavar="PYTHON", default=sys.executable,
                        help="the interpreter whose environment gets the wheel")
    parser.add_argument("--print-key", action="store_true", help="print the cache key and folder, build nothing")
    ns = parser.parse_args(argv)
    if ns.print_key:
        flags = cpu_flags()
        key = cache_key(flags, cmake_args(flags, os.environ.get("CMAKE_ARGS", "")), _python_tag(ns.pip))
        print(json.dumps({**key, "cpu_flags": len(key["cpu_flags"]), "folder": str(wheel_cache_dir(key))},
                         indent=1))
        return 0
    build_and_install(ns.pip)
    return 0


if __name__ == "__main__":
    sys.exit(main())
