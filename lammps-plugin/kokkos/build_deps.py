#!/usr/bin/env python3
"""Build, once and into a cache, what the Kokkos tests of the plugin need beyond Debian's packages.

    python lammps-plugin/kokkos/build_deps.py kokkos    # Kokkos 3.4 with the OpenMP and Serial backends
    python lammps-plugin/kokkos/build_deps.py lammps    # LAMMPS 29 Sep 2021 with KOKKOS (that Kokkos), PLUGIN, MANYBODY
    python lammps-plugin/kokkos/build_deps.py status    # what is built, as JSON (builds nothing)

Both come from Debian source packages, fetched with ``apt-get source --download-only`` (a ``deb-src`` line for
bookworm must be in /etc/apt/sources.list*): Kokkos is ``packages/kokkos`` of the ``trilinos`` source (13.2.0,
Kokkos 3.4.01; Debian's LAMMPS source has its bundled lib/kokkos removed), LAMMPS is the ``lammps`` source
(20220106.git7586adbb6a, LAMMPS_VERSION "29 Sep 2021"). Nothing is downloaded from anywhere else.

Where (override with the environment):
  HYBRIDPOT_KOKKOS_OPENMP   Kokkos install prefix   (default ~/.cache/hybridpot/kokkos-openmp)
  HYBRIDPOT_LAMMPS_KOKKOS   LAMMPS source + build   (default ~/.cache/hybridpot/lammps-2021-kokkos)
  HYBRIDPOT_BUILD_JOBS      parallel compile jobs   (default: the number of CPUs)

A build is complete when its ``hybridpot-build.json`` exists (written last); otherwise it is (re)built from
scratch, so an interrupted build is redone, and a complete one is never touched. Exit status 0 with the prefix
on stdout when built; 3 with the reason on stderr when the sources cannot be fetched (no deb-src, no network,
no apt-get), 1 when a build fails.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path

CACHE = Path.home() / ".cache" / "hybridpot"
KOKKOS_PREFIX = Path(os.environ.get("HYBRIDPOT_KOKKOS_OPENMP", CACHE / "kokkos-openmp")).expanduser()
LAMMPS_ROOT = Path(os.environ.get("HYBRIDPOT_LAMMPS_KOKKOS", CACHE / "lammps-2021-kokkos")).expanduser()
MARKER = "hybridpot-build.json"
KOKKOS_VERSION = "3.4"          # of trilinos 13.2.0's packages/kokkos (the LAMMPS 2021 KOKKOS package needs >= 3.4.01)
LAMMPS_VERSION = "29 Sep 2021"  # src/version.h of Debian bookworm's lammps source


class Unavailable(Exception):
    """The source packages cannot be fetched here (the reason is the message)."""


def jobs() -> str:
    return os.environ.get("HYBRIDPOT_BUILD_JOBS", str(os.cpu_count() or 1))


def run(command: list[str], log: Path, cwd: Path | None = None) -> None:
    """Run a build step, its output appended to ``log``; raise with the log's tail when it fails."""
    with log.open("a") as out:
        out.write(f"\n+ {' '.join(map(str, command))}\n")
        out.flush()
        done = subprocess.run([str(c) for c in command], cwd=cwd, stdout=out, stderr=subprocess.STDOUT)
    if done.returncode != 0:
        tail = log.read_text(errors="replace")[-4000:]
        raise RuntimeError(f"{' '.join(map(str, command))} failed (exit {done.returncode}); log {log}:\n{tail}")


def fetch_source(package: str, into: Path) -> Path:
    """``apt-get source --download-only PACKAGE`` into ``into``; the path of its .orig tarball."""
    for tool in ("cmake", "g++", "tar"):
        if shutil.which(tool) is None:
            raise Unavailable(f"no {tool} (apt-get install cmake g++)")
    if shutil.which("apt-get") is None:
        raise Unavailable("no apt-get (the sources are Debian source packages)")
    into.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(["apt-get", "source", "--download-only", package], cwd=into, capture_output=True, text=True)
    if done.returncode != 0:
        why = (done.stderr or done.stdout).strip().splitlines()
        raise Unavailable(f"apt-get source {package} failed: {why[-1] if why else done.returncode} (it needs a 'deb-src' line for "
                          "bookworm in /etc/apt/sources.list* and apt-get update, and the network)")
    tarballs = sorted(into.glob(f"{package}_*.orig.tar.*"))
    if not tarballs:
        raise Unavailable(f"apt-get source {package}: no .orig tarball in {into}")
    return tarballs[-1]


def status() -> dict:
    """What is built: the marker contents of each part, or None."""
    def marker(path: Path):
        return json.loads((path / MARKER).read_text()) if (path / MARKER).is_file() else None
    return {"kokkos": {"prefix": str(KOKKOS_PREFIX), "build": marker(KOKKOS_PREFIX)},
            "lammps": {"root": str(LAMMPS_ROOT), "build": marker(LAMMPS_ROOT)}}


def build_kokkos() -> Path:
    """Kokkos with the OpenMP and Serial backends, shared libraries, C++17, installed into KOKKOS_PREFIX."""
    if (KOKKOS_PREFIX / MARKER).is_file():
        return KOKKOS_PREFIX
    start = time.time()
    work = KOKKOS_PREFIX.with_name(KOKKOS_PREFIX.name + ".work")
    shutil.rmtree(KOKKOS_PREFIX, ignore_errors=True)
    shutil.rmtree(work, ignore_errors=True)
    tarball = fetch_source("trilinos", work)
    log = work / "build.log"
    run(["tar", "xf", tarball.name, "--wildcards", "*/packages/kokkos/*"], log, cwd=work)
    source = next(work.glob("*/packages/kokkos"))
    configure = ["cmake", "-S", source, "-B", work / "build", f"-DCMAKE_INSTALL_PREFIX={KOKKOS_PREFIX}", "-DCMAKE_BUILD_TYPE=Release",
                 "-DCMAKE_CXX_STANDARD=17", "-DBUILD_SHARED_LIBS=ON", "-DKokkos_ENABLE_OPENMP=ON", "-DKokkos_ENABLE_SERIAL=ON",
                 "-DKokkos_ENABLE_TESTS=OFF", "-DKokkos_ENABLE_EXAMPLES=OFF"]
    run(configure, log)
    run(["cmake", "--build", work / "build", "-j", jobs()], log)
    run(["cmake", "--install", work / "build"], log)
    found = re.search(r'PACKAGE_VERSION "([^"]+)"', (kokkos_cmake_dir(KOKKOS_PREFIX) / "KokkosConfigVersion.cmake").read_text())
    info = {"what": "Kokkos (OpenMP + Serial)", "version": found and found.group(1), "source": tarball.name,
            "configure": [str(c) for c in configure],
            "seconds": round(time.time() - start, 1), "jobs": jobs()}
    shutil.copy(log, KOKKOS_PREFIX / "build.log")
    shutil.rmtree(work)
    (KOKKOS_PREFIX / MARKER).write_text(json.dumps(info, indent=1) + "\n")
    return KOKKOS_PREFIX


def kokkos_cmake_dir(prefix: Path) -> Path:
    return next(prefix.glob("lib*/cmake/Kokkos"))


def lammps_complete() -> bool:
    """Whether the LAMMPS build is complete and the Kokkos it links to (a shared library) is still there."""
    if not (LAMMPS_ROOT / MARKER).is_file():
        return False
    return (Path(json.loads((LAMMPS_ROOT / MARKER).read_text())["kokkos"]) / MARKER).is_file()


def build_lammps() -> Path:
    """LAMMPS 29 Sep 2021: KOKKOS (on the Kokkos of build_kokkos), PLUGIN, MANYBODY; serial (MPI stubs), OpenMP on,
    shared liblammps and the lmp executable, in LAMMPS_ROOT/build (the source tree stays: the plugin compiles against it)."""
    if lammps_complete():
        return LAMMPS_ROOT
    kokkos = build_kokkos()
    start = time.time()
    shutil.rmtree(LAMMPS_ROOT, ignore_errors=True)
    tarball = fetch_source("lammps", LAMMPS_ROOT / "download")
    log = LAMMPS_ROOT / "build.log"
    run(["tar", "xf", tarball, "--exclude=*/doc", "--exclude=*/examples", "--exclude=*/bench", "--exclude=*/tools",
         "--exclude=*/unittest", "--exclude=*/lib/*"], log, cwd=LAMMPS_ROOT)
    source = next(p for p in LAMMPS_ROOT.iterdir() if p.is_dir() and (p / "src" / "version.h").is_file())
    source.rename(LAMMPS_ROOT / "lammps")
    source = LAMMPS_ROOT / "lammps"
    shutil.rmtree(LAMMPS_ROOT / "download")
    version = (source / "src" / "version.h").read_text()
    if LAMMPS_VERSION not in version:
        raise RuntimeError(f"{tarball.name}: version.h says {version.strip()}, expected {LAMMPS_VERSION}")
    configure = ["cmake", "-S", source / "cmake", "-B", LAMMPS_ROOT / "build", "-DCMAKE_BUILD_TYPE=Release",
                 "-DCMAKE_CXX_FLAGS_RELEASE=-O2 -DNDEBUG", "-DBUILD_SHARED_LIBS=ON", "-DBUILD_MPI=OFF", "-DBUILD_OMP=ON",
                 "-DPKG_KOKKOS=ON", "-DEXTERNAL_KOKKOS=ON", f"-DKokkos_DIR={kokkos_cmake_dir(kokkos)}", "-DPKG_PLUGIN=ON",
                 "-DPKG_MANYBODY=ON", "-DWITH_JPEG=OFF", "-DWITH_PNG=OFF", "-DWITH_GZIP=OFF", "-DWITH_FFMPEG=OFF",
                 "-DBUILD_TOOLS=OFF", "-DBUILD_DOC=OFF", "-DLAMMPS_EXCEPTIONS=ON"]
    run(configure, log)
    run(["cmake", "--build", LAMMPS_ROOT / "build", "-j", jobs()], log)
    info = {"what": "LAMMPS KOKKOS + PLUGIN + MANYBODY (serial, OpenMP)", "lammps_version": LAMMPS_VERSION, "source": tarball.name,
            "kokkos": str(kokkos), "configure": [str(c) for c in configure], "seconds": round(time.time() - start, 1), "jobs": jobs()}
    (LAMMPS_ROOT / MARKER).write_text(json.dumps(info, indent=1) + "\n")
    return LAMMPS_ROOT


PLUGIN = Path(__file__).resolve().parents[1]    # lammps-plugin/


def kokkos_backends() -> dict[str, dict | str]:
    """The Kokkos installations the harness can be compiled with: name -> its compiler and linker flags and the
    environment its programs run in, or -> the reason it is not available here.

    * ``serial``: Debian's libtrilinos-kokkos-dev (Kokkos 3.4, Serial only), or KOKKOS_INCLUDE/KOKKOS_LIBRARY;
    * ``openmp``: the Kokkos of :func:`build_kokkos` (OpenMP + Serial, default execution space OpenMP).
    """
    found: dict[str, dict | str] = {}
    include = Path(os.environ.get("KOKKOS_INCLUDE", "/usr/include/trilinos"))
    if (include / "Kokkos_Core.hpp").is_file():
        found["serial"] = {"cflags": [f"-I{include}"], "libs": [f"-l{os.environ.get('KOKKOS_LIBRARY', 'trilinos_kokkoscore')}", "-ldl"],
                           "env": {}}
    else:
        found["serial"] = f"Kokkos headers not found in {include} (apt-get install libtrilinos-kokkos-dev, or set KOKKOS_INCLUDE)"
    if (KOKKOS_PREFIX / MARKER).is_file():
        lib = kokkos_cmake_dir(KOKKOS_PREFIX).parents[1]
        found["openmp"] = {"cflags": ["-fopenmp", f"-I{KOKKOS_PREFIX / 'include'}"],
                           "libs": [f"-L{lib}", f"-Wl,-rpath,{lib}", "-lkokkoscore", "-ldl"], "env": {"OMP_PROC_BIND": "false"}}
    else:
        found["openmp"] = (f"no Kokkos with OpenMP in {KOKKOS_PREFIX} (build it: python lammps-plugin/kokkos/build_deps.py kokkos; "
                           "or set HYBRIDPOT_KOKKOS_OPENMP to an install made by it)")
    return found


def harness_command(backend: dict, output: Path, optimize: str = "-O2") -> list[str]:
    """The g++ call that builds kokkos/harness.cpp (with the model reader and kernels of src/) for a backend of
    :func:`kokkos_backends`."""
    sources = [PLUGIN / "kokkos" / "harness.cpp"] + [PLUGIN / "src" / f for f in ("model_file.cpp", "sha256.cpp", "kernels.cpp")]
    return ["g++", "-std=c++17", optimize, "-DHYBRIDPOT_KOKKOS", *backend["cflags"], f"-I{PLUGIN / 'src'}", *map(str, sources),
            "-o", str(output), *backend["libs"]]


LAMMPS_2021_NUM_VER = 20210929


def lammps_2021() -> dict | str:
    """The LAMMPS 2021 KOKKOS build of :func:`build_lammps`: its ``lmp``, the compiler flags of its library
    (defines, include directories: what a plugin must be compiled with) and Kokkos's library directory; or the
    reason it is not available here."""
    if not lammps_complete():
        return (f"no complete LAMMPS 2021 KOKKOS build in {LAMMPS_ROOT} (build it, ~15 min on 2 cores: python lammps-plugin/kokkos/"
                "build_deps.py lammps; or set HYBRIDPOT_LAMMPS_KOKKOS to a build made by it)")
    flags = {}
    for line in (LAMMPS_ROOT / "build" / "CMakeFiles" / "lammps.dir" / "flags.make").read_text().splitlines():
        if " = " in line and not line.startswith("#"):
            key, value = line.split(" = ", 1)
            flags[key.strip()] = shlex.split(value)
    info = json.loads((LAMMPS_ROOT / MARKER).read_text())
    return {"lmp": LAMMPS_ROOT / "build" / "lmp", "defines": [d for d in flags["CXX_DEFINES"] if d != "-Dlammps_EXPORTS"],
            "includes": flags["CXX_INCLUDES"], "cxxflags": flags["CXX_FLAGS"],
            "kokkos_lib": kokkos_cmake_dir(Path(info["kokkos"])).parents[1], "version": info["lammps_version"]}


def plugin_2021_command(build: dict, output: Path) -> list[str]:
    """The g++ call that builds the plugin (pair_style hpot, hpot/kk, compute hpot/gamma) for the LAMMPS 2021 KOKKOS
    build ``build`` (:func:`lammps_2021`): the same sources as the wheel's plugin plus kokkos/pair_hpot_kokkos.cpp, with
    that LAMMPS's own defines and include directories."""
    sources = sorted(map(str, (PLUGIN / "src").glob("*.cpp"))) + [str(PLUGIN / "kokkos" / "pair_hpot_kokkos.cpp")]
    return ["g++", *build["cxxflags"], "-shared", *build["defines"], "-DHYBRIDPOT_KOKKOS", "-DHYBRIDPOT_LAMMPS_KOKKOS",
            f"-DHYBRIDPOT_LAMMPS_NUM_VER={LAMMPS_2021_NUM_VER}", f'-DHYBRIDPOT_LAMMPS_VERSION="{build["version"]}"',
            f"-I{PLUGIN / 'src'}", f"-I{PLUGIN / 'kokkos'}", *build["includes"], *sources, "-o", str(output),
            f"-L{build['kokkos_lib']}", f"-Wl,-rpath,{build['kokkos_lib']}", "-lkokkoscore"]


def main(argv: list[str]) -> int:
    what = argv[1] if len(argv) == 2 else ""
    if what == "status":
        print(json.dumps(status(), indent=1))
        return 0
    if what not in ("kokkos", "lammps"):
        print(__doc__, file=sys.stderr)
        return 2
    try:
        print(build_kokkos() if what == "kokkos" else build_lammps())
    except Unavailable as exc:
        print(f"build_deps.py {what}: not built: {exc}", file=sys.stderr)
        return 3
    except RuntimeError as exc:
        print(f"build_deps.py {what}: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
