"""``python -m diffusion_anomaly <verb> [options]``: what users run beside the MONAI bundle CLI.

``python -m diffusion_anomaly --help`` lists the verbs; ``python -m diffusion_anomaly <verb> --help`` shows a
verb's options. Bundles themselves run with ``python -m monai.bundle run --config_file ...``.
"""

from __future__ import annotations

import importlib
import sys

# verb -> (module in diffusion_anomaly.cli, one line of help)
VERBS = {
    "prepare-dataset": ("prepare_dataset", "turn a public data set folder (BraTS, IXI, ...) into a datalist"),
    "prepare-demo-data": ("prepare_demo_data", "rebuild the embedded demo data from its source packages"),
    "check-demo-data": ("check_demo_data", "verify the embedded demo data against SHA256SUMS"),
    "render-demo-data": ("render_demo_data", "PNG previews of the demo volumes"),
    "benchmark": ("benchmark", "accuracy of every bundle on a datalist split (--what speed | anofpdm-fast-mode | "
                               "anofpdm-modes for the other benchmarks)"),
    "select-standardisation": ("select_standardisation", "choose the intensity standardisation on validation data"),
    "package": ("package_bundles", "release zips, the version check (--check) and the manifest"),
}
# verbs of 0.1.3 and earlier that are now a bundle config (configs/calibrate.json), by bundle
MOVED_TO_BUNDLE_CONFIG = {"select-disyre-scoring": "disyre", "tune-synomaly": "synomaly",
                          "derive-anofpdm-constants": "anofpdm"}
BENCHMARKS = {"accuracy": "benchmark", "speed": "benchmark_speed", "anofpdm-fast-mode": "benchmark_anofpdm",
              "anofpdm-modes": "compare_anofpdm_modes"}


def usage() -> str:
    width = max(map(len, VERBS))
    lines = [f"  {verb:<{width}}  {text}" for verb, (_, text) in VERBS.items()]
    return "usage: python -m diffusion_anomaly <verb> [options]\n\nverbs:\n" + "\n".join(lines) + \
        "\n\npython -m diffusion_anomaly <verb> --help shows a verb's options."


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(usage())
        return 0
    verb, rest = argv[0], argv[1:]
    if verb in MOVED_TO_BUNDLE_CONFIG:
        configs = f"bundles/{MOVED_TO_BUNDLE_CONFIG[verb]}/configs"
        print(f"{verb} is now the bundle's calibration config: python -m monai.bundle run --config_file "
              f"\"['{configs}/inference.json','{configs}/calibrate.json']\" [--datalist ...]; it writes an overlay "
              "(<output_dir>/calibration/calibrated.json) to pass after inference.json", file=sys.stderr)
        return 2
    if verb not in VERBS:
        print(f"unknown verb {verb!r}\n\n{usage()}", file=sys.stderr)
        return 2
    module = VERBS[verb][0]
    if verb == "benchmark" and "--what" in rest:
        i = rest.index("--what")
        what = rest[i + 1] if i + 1 < len(rest) else ""
        if what not in BENCHMARKS:
            print(f"benchmark --what must be one of {sorted(BENCHMARKS)}, got {what!r}", file=sys.stderr)
            return 2
        module, rest = BENCHMARKS[what], rest[:i] + rest[i + 2:]
    sys.argv = [f"python -m diffusion_anomaly {verb}", *rest]  # argparse shows this in its usage line
    code = importlib.import_module(f"diffusion_anomaly.cli.{module}").main(rest)
    return int(code or 0)


if __name__ == "__main__":
    sys.exit(main())
