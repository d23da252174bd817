"""Release zips of every bundle: ``dist/<bundle>_v<version>.zip`` plus ``dist/SHA256SUMS``.

Each zip unzips into ``<bundle>/`` and is self-contained: the bundle's files (without ``runs/``, ``eval/`` and
caches) and a copy of the shared ``diffusion_anomaly`` package at ``<bundle>/diffusion_anomaly/``, which is on the
Python path whenever the bundle folder is (``python -m monai.bundle run`` from inside it; MONAI Label puts the
bundle folder first on ``sys.path``). Zips are deterministic: sorted entries, fixed timestamps and permissions,
so two runs give identical bytes. Files over 25 MB (the model-zoo limit) are left out and listed in
``<bundle>/large_files.yml`` with their SHA-256 and a download URL under ``--large-files-url``.

``--check`` compares every bundle's content hash with the committed manifest ``bundles/manifest.json`` and fails
when content changed without a new ``version`` (with a ``changelog`` entry); ``--update-manifest`` records the
current hashes after a version bump.

Usage: python -m diffusion_anomaly package [--dist dist] [--check] [--update-manifest]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

from . import REPO

PACKAGE = REPO / "shared/diffusion_anomaly"
MANIFEST = REPO / "bundles/manifest.json"
SKIP_DIRS = {"runs", "eval", "__pycache__", ".pytest_cache", "dist"}
SKIP_SUFFIXES = (".pyc", ".tmp")
# the command-line verbs are the repository's tools, not part of what a bundle runs
NOT_VENDORED = {"cli", "__main__.py"}
MAX_BYTES = 25 * 1024 * 1024
FIXED_TIME = (2024, 1, 1, 0, 0, 0)


def bundle_names(root: Path = REPO / "bundles") -> list[str]:
    return sorted(p.parent.parent.name for p in root.glob("*/configs/metadata.json"))


def _walk(folder: Path, prefix: str) -> list[tuple[str, Path]]:
    out = []
    for dirpath, dirnames, filenames in os.walk(folder):
        dirnames[:] = sorted(d for d in dirnames if d not in SKIP_DIRS)
        for name in sorted(filenames):
            if not name.endswith(SKIP_SUFFIXES):
                path = Path(dirpath) / name
                out.append((f"{prefix}/{path.relative_to(folder).as_posix()}", path))
    return out


def bundle_entries(bundle: str, root: Path = REPO / "bundles") -> list[tuple[str, Path]]:
    """``(name in the zip, file)`` for the bundle and the vendored package, sorted."""
    package = [(name, path) for name, path in _walk(PACKAGE, f"{bundle}/diffusion_anomaly")
               if path.relative_to(PACKAGE).parts[0] not in NOT_VENDORED]
    entries = _walk(root / bundle, bundle) + package
    return sorted(entries)


def metadata(bundle: str, root: Path = REPO / "bundles") -> dict:
    return json.loads((root / bundle / "configs/metadata.json").read_text())


def content_hash(bundle: str, root: Path = REPO / "bundles") -> str:
    """SHA-256 over every shipped file, with ``version`` and ``changelog`` taken out of metadata.json."""
    digest = hashlib.sha256()
    for name, path in bundle_entries(bundle, root):
        data = path.read_bytes()
        if name == f"{bundle}/configs/metadata.json":
            meta = json.loads(data)
            meta.pop("version", None), meta.pop("changelog", None)
            data = json.dumps(meta, sort_keys=True).encode()
        digest.update(name.encode() + b"\0" + hashlib.sha256(data).digest())
    return digest.hexdigest()


def _zip_info(name: str) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(name, date_time=FIXED_TIME)
    info.compress_type = zipfile.ZIP_DEFLATED
    info.external_attr = 0o644 << 16
    info.create_system = 3  # unix, whatever the host
    return info


def package(bundle: str, dist: Path, large_files_url: str, root: Path = REPO / "bundles") -> Path:
    untracked = untracked_files(bundle, root)
    if untracked:
        raise SystemExit(f"{bundle}: refusing to package files git does not track: {', '.join(untracked)}")
    version = metadata(bundle, root)["version"]
    target = dist / f"{bundle}_v{version}.zip"
    large = []
    tmp = target.with_suffix(".zip.tmp")
    dist.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(tmp, "w", compresslevel=9) as zf:
        for name, path in bundle_entries(bundle, root):
            if path.stat().st_size > MAX_BYTES:
                sha = hashlib.sha256(path.read_bytes()).hexdigest()
                large.append(f"  - path: \"{name.split('/', 1)[1]}\"\n    url: \"{large_files_url}/{bundle}/"
                             f"{path.name}\"\n    hash_val: \"{sha}\"\n    hash_type: \"sha256\"\n")
                continue
            zf.writestr(_zip_info(name), path.read_bytes())
        if large:
            zf.writestr(_zip_info(f"{bundle}/large_files.yml"), "large_files:\n" + "".join(large))
    os.replace(tmp, target)
    return target


def _git_tracked(folder: Path) -> set[Path] | None:
    """Files git tracks directly in ``folder``, or None when ``folder`` is not in a git checkout."""
    top = subprocess.run(["git", "rev-parse", "--show-toplevel"], cwd=folder, capture_output=True, text=True)
    listed = subprocess.run(["git", "ls-files", "-z", "--full-name", "--", "."], cwd=folder, capture_output=True)
    if top.returncode != 0 or listed.returncode != 0:
        return None
    return {(Path(top.stdout.strip()) / name).resolve() for name in listed.stdout.decode().split("\0") if name}


def untracked_files(bundle: str, root: Path = REPO / "bundles") -> list[str]:
    """Shipped files that git does not track (untracked or ignored), e.g. a ``models/model.ts`` written by
    ``ckpt_export``: a release would ship bytes that no commit holds, under an unchanged version. Folders outside
    a git checkout are not checked (nothing to compare with)."""
    paths = [path for _, path in bundle_entries(bundle, root)]
    tracked = {folder: _git_tracked(folder) for folder in {p.parent for p in paths}}
    return sorted(str(p) for p in paths if (listed := tracked[p.parent]) is not None and p.resolve() not in listed)


def check_versions(root: Path = REPO / "bundles", manifest_path: Path = MANIFEST, check_git: bool = True) -> list[str]:
    """Problems: content changed without a version bump, a version without changelog entry, a stale manifest, and
    (``check_git``) shipped files git does not track."""
    manifest = json.loads(manifest_path.read_text()) if manifest_path.is_file() else {}
    problems = []
    for bundle in bundle_names(root):
        meta, current = metadata(bundle, root), content_hash(bundle, root)
        version = meta.get("version")
        for path in untracked_files(bundle, root) if check_git else []:
            problems.append(f"{bundle}: {path} is not tracked by git (untracked or ignored); remove it or commit it "
                            "with a version bump")
        if version not in meta.get("changelog", {}):
            problems.append(f"{bundle}: version {version} has no changelog entry")
        recorded = manifest.get(bundle)
        if recorded is None:
            problems.append(f"{bundle}: not in {manifest_path.name}; "
                            "run python -m diffusion_anomaly package --update-manifest")
        elif recorded["content_sha256"] != current and recorded["version"] == version:
            problems.append(f"{bundle}: content changed but version is still {version}; bump 'version' in "
                            "configs/metadata.json, add a changelog entry, then run --update-manifest")
        elif recorded["content_sha256"] != current or recorded["version"] != version:
            problems.append(f"{bundle}: manifest records version {recorded['version']}, metadata says {version}; "
                            "run python -m diffusion_anomaly package --update-manifest")
    return problems


def update_manifest(root: Path = REPO / "bundles", manifest_path: Path = MANIFEST) -> dict:
    manifest = {b: {"version": metadata(b, root)["version"], "content_sha256": content_hash(b, root)}
                for b in bundle_names(root)}
    manifest_path.write_text(json.dumps(manifest, indent=4, sort_keys=True) + "\n")
    return manifest


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dist", type=Path, default=REPO / "dist")
    parser.add_argument("--bundles", nargs="*", help="default: every bundle")
    parser.add_argument("--large-files-url", default="https://example.org/diffusion-anomaly-weights",
                        help="base URL where files over 25 MB are hosted")
    parser.add_argument("--check", action="store_true", help="only check versions against the manifest")
    parser.add_argument("--update-manifest", action="store_true")
    args = parser.parse_args(argv)
    if args.update_manifest:
        print(json.dumps(update_manifest(), indent=2))
        return
    if args.check:
        problems = check_versions()
        for p in problems:
            print(p, file=sys.stderr)
        sys.exit(1 if problems else 0)
    sums = []
    for bundle in args.bundles or bundle_names():
        path = package(bundle, args.dist, args.large_files_url)
        sums.append(f"{hashlib.sha256(path.read_bytes()).hexdigest()}  {path.name}\n")
        print(f"{path} ({path.stat().st_size / 1e6:.1f} MB)")
    (args.dist / "SHA256SUMS").write_text("".join(sorted(sums, key=lambda s: s.split()[1])))


if __name__ == "__main__":
    main()
