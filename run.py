#!/usr/bin/env python3
"""Set-up and entry point on a machine that has only Python 3.11 and pip.

    python3 run.py up      # create .venv, install, start the dev stack (SQLite) in .stack/
    python3 run.py test    # create .venv, install, run the test suite

Anything after the command goes to the stack launcher or to pytest, e.g.
``python3 run.py up --port 8448`` or ``python3 run.py test -k appservice``.
This file uses the standard library only: it runs before anything is installed.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import venv

ROOT = os.path.dirname(os.path.abspath(__file__))
VENV = os.path.join(ROOT, ".venv")
PYTHON = os.path.join(VENV, "bin", "python")
STAMP = os.path.join(VENV, ".wangxin-installed")


def _install_fingerprint() -> str:
    digest = hashlib.sha256()
    for name in ("setup.cfg", "pyproject.toml"):
        with open(os.path.join(ROOT, name), "rb") as f:
            digest.update(f.read())
    return digest.hexdigest()


def ensure_installed() -> None:
    """Create the virtualenv and install the project (editable) if setup.cfg changed since."""
    if sys.version_info < (3, 11):  # noqa: UP036 (this file runs before any version is known)
        sys.exit(f"Wangxin needs Python 3.11 or newer; this is {sys.version.split()[0]}.")
    if not os.path.exists(PYTHON):
        print(f"Creating a virtualenv in {VENV} …", flush=True)
        venv.EnvBuilder(with_pip=True).create(VENV)
    fingerprint = _install_fingerprint()
    try:
        with open(STAMP, encoding="utf-8") as f:
            if f.read().strip() == fingerprint:
                return
    except FileNotFoundError:
        pass
    print("Installing Wangxin and its dependencies (first run takes a minute) …", flush=True)
    pip = [PYTHON, "-m", "pip", "--disable-pip-version-check", "-q"]
    subprocess.run([*pip, "install", "--upgrade", "pip", "setuptools", "wheel"], check=True)
    subprocess.run([*pip, "install", "-e", f"{ROOT}[stack,test,dev]"], check=True)
    with open(STAMP, "w", encoding="utf-8") as f:
        f.write(fingerprint)


def _parallel(args: list[str]) -> list[str]:
    """Three pytest-xdist workers, dealt the tests one or two at a time in collection order, so
    each runs a share of every backend's tests on a stack of its own (tests/conftest.py); unless
    the caller chose (``-n 0`` runs everything in this process, e.g. under a debugger). Three:
    the stacks spend much of their time waiting on each other, so three keep two cores busy.
    Dealt in small chunks rather than xdist's default blocks of a quarter of a worker's share:
    blocks left one worker with most of a backend's slow tests while the others ran dry."""
    if any(a == "-n" or a.startswith(("-n", "--numprocesses", "--dist")) for a in args) or "no:xdist" in args:
        return []
    return ["-n", "3", "--dist", "load", "--maxschedchunk", "1"]


def main(argv: list[str]) -> int:
    if not argv or argv[0] not in ("up", "test", "bench"):
        print(__doc__.strip())
        return 2
    command, rest = argv[0], argv[1:]
    ensure_installed()
    os.chdir(ROOT)
    if command == "up":
        argv_out = [PYTHON, "-m", "wangxin_stack", "up", *rest]
    elif command == "test":
        argv_out = [PYTHON, "-m", "pytest", *_parallel(rest), *rest]
    else:
        argv_out = [PYTHON, "-m", "bench", *rest]
    # Replace this process, so Ctrl-C and SIGTERM reach the launcher or pytest directly.
    os.execv(PYTHON, argv_out)
    return 0  # not reached


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
