"""The llama.cpp build: a wheel is reused only on a CPU with the same flags, and AMX is opted out where present."""

import importlib.util

from selfdebug.config import REPO_ROOT

spec = importlib.util.spec_from_file_location("build_llama_cpp", REPO_ROOT / "requirements" / "build_llama_cpp.py")
build = importlib.util.module_from_spec(spec)
spec.loader.exec_module(build)

EPYC = "processor\t: 0\nmodel name\t: AMD EPYC\nflags\t\t: fpu sse sse2 avx fma f16c\n\nprocessor\t: 1\nflags\t: fpu\n"
XEON = "model name\t: Intel(R) Xeon(R)\nflags\t\t: avx avx2 avx512f avx512_bf16 amx_tile amx_int8 amx_bf16\n"


def test_flags_of_the_first_processor():
    assert build.cpu_flags(EPYC) == ["avx", "f16c", "fma", "fpu", "sse", "sse2"]
    assert build.cpu_flags("no flags here") == []


def test_amx_is_opted_out_only_where_the_cpu_has_it():
    assert build.cmake_args(build.cpu_flags(EPYC)) == ""
    xeon = build.cmake_args(build.cpu_flags(XEON))
    assert "-DCMAKE_C_FLAGS='-mno-amx-tile -mno-amx-int8 -mno-amx-bf16'" in xeon
    assert "-DCMAKE_CXX_FLAGS='-mno-amx-tile -mno-amx-int8 -mno-amx-bf16'" in xeon
    # the user's own CMAKE_ARGS are kept
    assert build.cmake_args(build.cpu_flags(XEON), "-DGGML_BLAS=ON").startswith("-DGGML_BLAS=ON ")


def test_a_wheel_built_on_one_cpu_is_not_reused_on_another():
    keys = [build.cache_key(build.cpu_flags(t), build.cmake_args(build.cpu_flags(t)), "cpython311")
            for t in (EPYC, XEON)]
    dirs = [build.wheel_cache_dir(k) for k in keys]
    assert dirs[0] != dirs[1]
    assert dirs[0].name.startswith("llama-cpp-python-0.3.36-")
    # same CPU, same flags, same Python: the same folder (so a rebuild is skipped)
    again = build.cache_key(build.cpu_flags(EPYC), build.cmake_args(build.cpu_flags(EPYC)), "cpython311")
    assert build.wheel_cache_dir(again) == dirs[0]
    # another Python ABI or other CMake arguments: another folder
    assert build.wheel_cache_dir(build.cache_key(build.cpu_flags(EPYC), "", "cpython312")) != dirs[0]
    assert build.wheel_cache_dir(build.cache_key(build.cpu_flags(EPYC), "-DGGML_BLAS=ON", "cpython311")) != dirs[0]


def test_installed_engine_has_no_amx_kernels_on_an_amx_cpu():
    """What the build is for: on a CPU that reports AMX, the installed llama.cpp must not use AMX."""
    import pytest

    llama_cpp = pytest.importorskip("llama_cpp")
    if not any(f in build.cpu_flags() for f in build.AMX_FLAGS):
        pytest.skip("this CPU has no AMX")
    info = llama_cpp.llama_print_system_info().decode()
    assert "AMX" not in info, info
    assert "AVX512 = 1" in info, info  # every other native kernel kept
