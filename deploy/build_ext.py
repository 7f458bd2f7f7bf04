"""Compile the snapshot diff (games/engine/delta.py) with Cython into games/engine/_delta_c, an optional accelerator.

    .venv/bin/python -m deploy.build_ext

scripts/run and scripts/test run this. It compiles delta.py's own source (the part above its "end of the compiled
part" line), unchanged, and stamps the result with the SHA-256 of delta.py: delta.py uses the compiled diff only
when the stamp matches, so an edited delta.py is never shadowed by an old build. delta.py is written in Cython's
pure-Python mode (type hints, @cython.cfunc), which plain Python runs as ordinary code. Needs Cython and a C compiler;
without them it says so and exits 0 (the server then runs the Python diff).
"""

from __future__ import annotations

import hashlib
import shutil
import sys
import sysconfig
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SOURCE = ROOT / "games" / "engine" / "delta.py"
MODULE = "_delta_c"
MARKER = "# ---- end of the compiled part"


def compiled_source(text: str) -> str:
    """What is compiled: delta.py above the marker, plus the digest of the whole file."""
    head, found, _ = text.partition(MARKER)
    if not found:
        raise SystemExit(f"{SOURCE}: no '{MARKER}' line")
    return f'{head.rstrip()}\n\n\nSOURCE_DIGEST = "{hashlib.sha256(text.encode()).hexdigest()}"\n'


def target() -> Path:
    return SOURCE.with_name(MODULE + sysconfig.get_config_var("EXT_SUFFIX"))


def build() -> int:
    text = SOURCE.read_text()
    out = target()
    try:
        from Cython.Build import cythonize
        from setuptools import Extension
        from setuptools.dist import Distribution
    except ImportError as exc:
        print(f"build_ext: {exc.name} is not installed; the Python diff will be used", file=sys.stderr)
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"{MODULE}.py"
        path.write_text(compiled_source(text))
        try:
            modules = cythonize(
                [Extension(MODULE, [str(path)])], compiler_directives={"language_level": 3}, quiet=True,
                build_dir=tmp,
            )
            dist = Distribution({"ext_modules": modules})
            command = dist.get_command_obj("build_ext")
            command.build_lib, command.build_temp = tmp, tmp
            dist.run_command("build_ext")
        except Exception as exc:  # no compiler, or a broken one: the Python diff still works
            print(f"build_ext: compiling {SOURCE.name} failed ({exc}); the Python diff will be used", file=sys.stderr)
            return 0
        built = next(Path(tmp).glob(f"{MODULE}*.so"), None) or next(Path(tmp).glob(f"{MODULE}*.pyd"))
        shutil.copyfile(built, out)
    print(f"build_ext: {out.relative_to(ROOT)} built from {SOURCE.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(build())
