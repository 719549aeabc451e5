"""Fail loudly when the installed environment is not the one requirements.lock describes.

    python .ci/check_lock.py requirements.lock

Every locked package must be installed at its locked version, and nothing
but the project itself and pip may be installed beside them: a fresh machine
installs the lock, so a difference here is a run nobody else can reproduce.
"""

from __future__ import annotations

import re
import sys
from importlib import metadata
from pathlib import Path

PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s;\\]+)")
# Installed beside the lock on purpose: the project (editable) and the installer.
UNLOCKED = {"voicevae", "pip"}


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def main(lock_path: str) -> int:
    locked = {}
    for line in Path(lock_path).read_text().splitlines():
        if m := PIN.match(line.strip()):
            locked[canonical(m.group(1))] = m.group(2)
    installed = {canonical(d.metadata["Name"]): d.version for d in metadata.distributions()}
    problems = []
    for name, version in sorted(locked.items()):
        have = installed.get(name)
        if have is None:
            problems.append(f"{name}: locked at {version}, not installed")
        elif have != version:
            problems.append(f"{name}: locked at {version}, installed {have}")
    for name in sorted(set(installed) - set(locked) - UNLOCKED):
        problems.append(f"{name}: installed {installed[name]}, not in the lock")
    if problems:
        print(f"{lock_path}: the environment differs from the lock ({len(problems)}):", file=sys.stderr)
        for p in problems:
            print(f"  {p}", file=sys.stderr)
        print("Rebuild the environment (make clean setup) or refresh the lock (make lock).", file=sys.stderr)
        return 1
    print(f"{lock_path}: all {len(locked)} locked packages installed at their versions")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1] if len(sys.argv) > 1 else "requirements.lock"))
