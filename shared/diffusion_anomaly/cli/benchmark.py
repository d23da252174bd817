"""Evaluate every bundle (and the intensity baseline) on one datalist and device; print one markdown table.

Each bundle runs its own evaluate workflow through the MONAI bundle CLI in a fresh process:
  python -m monai.bundle run --config_file "['<bundle>/configs/inference.json','<bundle>/configs/evaluate.json']"
and the table is read from the ``metrics.json`` files it writes. Also writes the table as JSON.

Test cases that carry a ``family`` (the in-domain benchmark, ``shared/demo_data/in_domain_benchmark.json``) also
get a table per family.

A CPU benchmark of every bundle takes hours, so it can be run in pieces: after each bundle, ``<out>/<bundle>/
benchmark_run.json`` records what produced its metrics (the evaluation command less its output folder, the
SHA-256 of the bundle's configs and weights, and one over the shared package's code). With ``--resume`` a bundle
whose record matches the current command and files is read back instead of run again; any difference (datalist,
device, intensity, an edited config, new weights, changed package code) runs it again.

Usage: python -m diffusion_anomaly benchmark [--bundles disyre intensity_baseline] [--datalist path/to/datalist.json]
                                   [--device cpu|cuda] [--intensity paper|standard|histogram] [--bias-field none|n4]
                                   [--out runs/benchmark] [--resume]
"""

from __future__ import annotations

import argparse
import functools
import hashlib
import json
import subprocess
import sys
import time
from pathlib import Path

from ..errors import InputDataError
from ..io import atomic_write_json
from ..transforms.standardise import BIAS_FIELDS, INTENSITY_MODES
from . import REPO
from .benchmark_ceiling import ceiling
from .benchmark_ceiling import markdown as ceiling_markdown

COLUMNS = ("method", "AP", "AUROC", "oracle Dice", "Dice @ FPR 5 %", "test FPR @ FPR 5 %", "Dice @ FPR 1 %",
           "test FPR @ FPR 1 %", "labelled @ FPR 1 %", "slice AUROC (mean)", "NFE / slice", "s / volume",
           "peak memory (MB)", "device")
CEILING_TOLERANCE = 0.05  # a lesion voxel "changed" when its intensity moved by more than 5 % of the brain median


def _fmt(x, digits=3) -> str:
    return "n/a" if x is None else f"{x:.{digits}f}" if isinstance(x, float) else str(x)


def healthy_fpr_on_test(metrics: dict, key: str) -> float | None:
    """The false-positive rate a validation-calibrated threshold reaches on the test cases' healthy voxels.

    The evaluator reports, at each calibrated threshold, the labelled fraction of all evaluated voxels and the
    sensitivity; with the pooled positive / negative counts: FP = labelled x (P + N) - sensitivity x P, FPR = FP / N.
    Where this is far from the target (e.g. 1.5 % for a 5 % threshold) the threshold did not transfer from the
    validation subjects, and Dice values at "the same" threshold compare different operating points.
    """
    calibrated, pooled = metrics["calibrated"].get(key), metrics["pooled"]
    n_pos, n_neg = pooled.get("n_pos"), pooled.get("n_neg")
    if not calibrated or not n_neg or n_pos is None or calibrated.get("sensitivity") is None:
        return None
    false_positives = calibrated["labelled_fraction"] * (n_pos + n_neg) - calibrated["sensitivity"] * n_pos
    return max(false_positives, 0.0) / n_neg


def row(metrics: dict) -> dict:
    cost = metrics["cost"]
    memory = cost["peak_gpu_mb"] if cost.get("peak_gpu_mb") is not None else cost["peak_rss_mb"]
    return {
        "method": metrics["method"],
        "AP": metrics["pooled"]["ap"],
        "AUROC": metrics["pooled"]["auroc"],
        "oracle Dice": metrics["pooled"]["oracle_dice"],
        "Dice @ FPR 5 %": metrics["calibrated"].get("fpr_5", {}).get("dice"),
        "test FPR @ FPR 5 %": healthy_fpr_on_test(metrics, "fpr_5"),
        "Dice @ FPR 1 %": metrics["calibrated"].get("fpr_1", {}).get("dice"),
        "test FPR @ FPR 1 %": healthy_fpr_on_test(metrics, "fpr_1"),
        # the fraction of the test brain a viewer sees labelled at the 1 % healthy-FPR threshold
        "labelled @ FPR 1 %": metrics["calibrated"].get("fpr_1", {}).get("labelled_fraction"),
        "slice AUROC (mean)": metrics["slice_level"].get("mean", {}).get("auroc"),
        "NFE / slice": cost["nfe_per_slice"],
        "s / volume": cost["seconds_per_volume"],
        "peak memory (MB)": memory,
        "device": cost["device"],
    }


def group_table(results: dict[str, dict]) -> str:
    """AP and Dice at 5 % FPR per group (the in-domain benchmark's lesion families), one column per method; then
    the pooled row (voxels of all groups together, so the group with the most lesion voxels weighs most) and the
    mean over groups (each family weighs the same)."""
    groups = sorted({g for m in results.values() for g in m.get("groups", {})})
    if not groups:
        return ""
    methods = list(results)
    lines = ["| family | " + " | ".join(f"{m} AP | {m} Dice@5%" for m in methods) + " |",
             "|" + "---|" * (1 + 2 * len(methods))]
    for g in groups + ["pooled"]:
        cells = []
        for m in methods:
            stats = results[m]["groups"].get(g, {}) if g != "pooled" else {
                "ap": results[m]["pooled"]["ap"], "dice_fpr5": results[m]["calibrated"].get("fpr_5", {}).get("dice")}
            cells += [_fmt(stats.get("ap")), _fmt(stats.get("dice_fpr5"))]
        lines.append(f"| {g} | " + " | ".join(cells) + " |")
    means = []
    for m in methods:
        for key in ("ap", "dice_fpr5"):
            values = [results[m]["groups"].get(g, {}).get(key) for g in groups]
            means.append(_fmt(float(sum(values) / len(values))) if None not in values else "n/a")
    lines.append("| mean over families | " + " | ".join(means) + " |")
    return "\n".join(lines) + "\n"


def _ceiling_section(datalist: Path | None, out: Path) -> str:
    """The detectability ceiling of a painted benchmark (``benchmark_ceiling``), or why there is none (it comes
    after hours of runs, so no problem of its own may cost the report)."""
    try:
        results = ceiling((datalist or REPO / "shared/demo_data/datalist.json").resolve(), CEILING_TOLERANCE)
    except (InputDataError, OSError) as err:
        return f"\nNo detectability ceiling: {err}\n"
    atomic_write_json(out / "ceiling.json", {"tolerance": CEILING_TOLERANCE, "families": results})
    return ("\nDetectability ceiling (an oracle that sees the healthy host: |painted - host| / brain median; "
            "`benchmark_ceiling`):\n\n" + ceiling_markdown(results, CEILING_TOLERANCE))


def markdown(rows: list[dict]) -> str:
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    for r in rows:
        cells = [_fmt(r[c], 2 if c in ("s / volume", "NFE / slice") else 0 if "memory" in c else 3) for c in COLUMNS]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def fingerprint(bundle: Path, command: list[str]) -> dict:
    """What a bundle's benchmark metrics depend on: its evaluation command (without the output folder, so a run
    moved to another ``--out`` still matches), the SHA-256 of every file under the bundle's ``configs`` and
    ``models``, and one SHA-256 over the shared package's code (all but these command-line tools)."""
    args = list(command)
    if "--output_dir" in args:
        at = args.index("--output_dir")
        del args[at:at + 2]
    files = sorted(p for folder in ("configs", "models") for p in (bundle / folder).rglob("*") if p.is_file())
    digests = {str(p.relative_to(bundle)): hashlib.sha256(p.read_bytes()).hexdigest() for p in files}
    # args[0], the interpreter's path, differs between virtual environments
    return {"command": args[1:], "files": digests, "package_code": _package_code_digest()}


@functools.cache
def _package_code_digest() -> str:
    """SHA-256 over the shared package's Python files outside ``cli`` (read once per benchmark, not per bundle)."""
    package = Path(__file__).resolve().parents[1]
    code = hashlib.sha256()
    for p in sorted(package.rglob("*.py")):
        if "cli" not in p.relative_to(package).parts:
            code.update(str(p.relative_to(package)).encode() + b"\0" + p.read_bytes())
    return code.hexdigest()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bundles", nargs="+", help="bundle folder names (default: every bundle with evaluate.json)")
    parser.add_argument("--datalist", type=Path, help="datalist with 'validation' and 'test' splits (default: demo)")
    parser.add_argument("--device", choices=("cpu", "cuda"), help="default: cuda when available")
    parser.add_argument("--intensity", choices=INTENSITY_MODES,
                        help="intensity step of every bundle (default: each bundle's configured one)")
    parser.add_argument("--bias-field", choices=BIAS_FIELDS,
                        help="bias-field correction of every bundle (default: each bundle's configured one)")
    parser.add_argument("--out", type=Path, default=REPO / "runs/benchmark")
    parser.add_argument("--resume", action="store_true",
                        help="read back bundles whose recorded run matches this command and their files")
    args = parser.parse_args(argv)

    names = args.bundles or sorted(p.parent.parent.name for p in (REPO / "bundles").glob("*/configs/evaluate.json"))
    rows, failed, results = [], [], {}
    for name in names:
        configs = REPO / "bundles" / name / "configs"
        out = (args.out / name).resolve()
        cmd = [sys.executable, "-m", "monai.bundle", "run", "--config_file",
               str([str(configs / "inference.json"), str(configs / "evaluate.json")]), "--output_dir", str(out)]
        if args.datalist:
            cmd += ["--datalist", str(args.datalist.resolve())]
        if args.device:
            cmd += ["--device", f"$torch.device('{args.device}')"]
        if args.intensity:
            cmd += ["--intensity", args.intensity]
        if args.bias_field:
            cmd += ["--bias_field", args.bias_field]
        metrics_file, record_file = out / "evaluation/metrics.json", out / "benchmark_run.json"
        expected = fingerprint(REPO / "bundles" / name, cmd)
        record = json.loads(record_file.read_text()) if args.resume and record_file.is_file() else None
        if record is not None and record.get("fingerprint") == expected and metrics_file.is_file():
            print(f"== {name}: read back from {metrics_file} (--resume: same command, configs and weights)")
            wall = record.get("wall_seconds")
        else:
            print(f"== {name}: {' '.join(cmd)}", flush=True)
            start = time.perf_counter()
            record_file.unlink(missing_ok=True)
            metrics_file.unlink(missing_ok=True)  # never report an earlier run's numbers
            result = subprocess.run(cmd)
            wall = round(time.perf_counter() - start, 1)
            if result.returncode != 0:
                failed.append(name)
                print(f"== {name}: FAILED (exit {result.returncode})", file=sys.stderr)
            elif metrics_file.is_file():
                atomic_write_json(record_file, {"fingerprint": expected, "wall_seconds": wall})
        if not metrics_file.is_file():
            continue  # cases that failed are listed in the metrics; a run without metrics has no row
        metrics = json.loads(metrics_file.read_text())
        results[metrics["method"]] = metrics
        r = row(metrics)
        r["bundle"], r["wall_seconds"] = name, wall
        rows.append(r)
    table = markdown(rows)
    families = group_table(results)
    args.out.mkdir(parents=True, exist_ok=True)
    if families:
        table += "\nPer lesion family (pooled AP, Dice at the 5 % healthy-FPR threshold):\n\n" + families
        table += _ceiling_section(args.datalist, args.out)
    (args.out / "benchmark.json").write_text(json.dumps(rows, indent=2) + "\n")
    (args.out / "benchmark.md").write_text(table)
    print("\n" + table)
    if failed:
        print(f"failed: {failed}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
