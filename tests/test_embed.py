"""The embedding guarantee: a C++ program built against the *installed* package.

`python -m kexue --cmake-dir` names the folder holding kexueConfig.cmake; the
program in tests/cpp is configured with ``-Dkexue_DIR=<that folder>``
(find_package(kexue)), built, and run. It checks the CRF/MEMM entry points on
the spec's worked example and prints "N passed, 0 failed".
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
SOURCE = HERE / "cpp"


def _cxx_compiler() -> str | None:
    cxx = os.environ.get("CXX")
    if cxx:
        return shutil.which(cxx.split()[0])
    for name in ("c++", "g++", "clang++"):
        path = shutil.which(name)
        if path:
            return path
    return None


def _run(cmd: list[str], **kw) -> subprocess.CompletedProcess:
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=900, **kw)
    assert proc.returncode == 0, (
        f"{' '.join(cmd)} exited {proc.returncode}\n"
        f"--- stdout ---\n{proc.stdout[-6000:]}\n--- stderr ---\n{proc.stderr[-6000:]}"
    )
    return proc


def test_cmake_dir_holds_the_package_config():
    out = _run([sys.executable, "-m", "kexue", "--cmake-dir"]).stdout.strip()
    assert os.path.isabs(out), out
    assert os.path.isfile(os.path.join(out, "kexueConfig.cmake")), (
        f"`python -m kexue --cmake-dir` printed {out!r}, which has no kexueConfig.cmake"
    )
    assert os.path.isfile(os.path.join(out, "kexueConfigVersion.cmake")), out


def test_embed_find_package(tmp_path):
    cmake = shutil.which("cmake")
    if cmake is None:
        pytest.skip("cmake is not installed")
    cxx = _cxx_compiler()
    if cxx is None:
        pytest.skip("no C++ compiler (c++, g++, clang++ or $CXX) found")

    kexue_dir = _run([sys.executable, "-m", "kexue", "--cmake-dir"]).stdout.strip()
    assert os.path.isfile(os.path.join(kexue_dir, "kexueConfig.cmake")), (
        f"`python -m kexue --cmake-dir` printed {kexue_dir!r}, which has no kexueConfig.cmake"
    )

    build = tmp_path / "build"
    configure = [
        cmake,
        "-S",
        str(SOURCE),
        "-B",
        str(build),
        f"-Dkexue_DIR={kexue_dir}",
        f"-DCMAKE_CXX_COMPILER={cxx}",
        "-DCMAKE_BUILD_TYPE=Release",
    ]
    if shutil.which("ninja"):
        configure += ["-G", "Ninja"]
    _run(configure)
    _run([cmake, "--build", str(build), "-j", str(os.cpu_count() or 1)])

    exe = next(p for p in build.rglob("kexue_embed_test*") if p.is_file() and os.access(p, os.X_OK))
    proc = subprocess.run([str(exe)], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, f"exit {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
    assert " 0 failed" in proc.stdout, proc.stdout
