"""AnoFPDM cost: NFE, seconds and peak memory per slice for full and fast mode, memory at two t_max values, and
the time of one forward step (2 NFE) of the "paper" network on a 128x128 slice.

Each measurement runs in a fresh child process on real demo slices (case mrbraintumor1, preprocessed by the
bundle's inference config). Peak memory is the growth of the process' peak resident memory during inference
(CPU: /proc VmHWM after resetting it; GPU: torch.cuda.max_memory_allocated). Weights are the shipped ones for the
demo preset and random for the paper preset (cost does not depend on the weights).

Examples:
  python -m diffusion_anomaly benchmark --what anofpdm-fast-mode                      # the default table below
  python -m diffusion_anomaly benchmark --what anofpdm-fast-mode --only step --preset paper
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import torch

from diffusion_anomaly.io import atomic_write_json

from . import REPO

DEFAULT_RUNS = [  # (name, overrides)
    ("full t_max=600", {"t_max": 600, "step_stride": 1}),
    ("fast t_max=600 stride=10", {"t_max": 600, "step_stride": 10}),
    ("fast t_max=300 stride=10", {"t_max": 300, "step_stride": 10}),
]


def _status(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    return 0


def child(args) -> dict:
    from monai.bundle import ConfigParser
    from monai.data import Dataset

    from diffusion_anomaly.data import load_datalist
    from diffusion_anomaly.networks import load_weights

    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    bundle = REPO / "bundles/anofpdm"
    config = ConfigParser()
    config.read_config(str(bundle / "configs/inference.json"))
    config["bundle_root"] = str(bundle)
    shipped = config["preset"]
    config["preset"] = args.preset or shipped
    for key, value in json.loads(args.overrides).items():
        config[key] = value
    config["constants"] = {"thr_cls": 0.99, "delta_max": [0.05]}  # cost does not depend on them
    network = config.get_parsed_content("network_def")
    if config["preset"] == shipped:
        network = load_weights(network, bundle / "models/model.pt", device)
    else:
        torch.manual_seed(0)
        network = network.to(device).eval()
    inferer = config.get_parsed_content("inferer")
    result = {"preset": config["preset"], "device": str(device), "threads": args.threads,
              "parameters_M": round(sum(p.numel() for p in network.parameters()) / 1e6, 2)}
    if args.only == "step":  # one forward step: x_t -> eps_healthy, eps_null in one call, for one 128x128 slice
        x = torch.rand(1, config["num_channels"], 128, 128, device=device) * 2 - 1
        with torch.no_grad():
            inferer.predict(network, x, 300)
            times = []
            for _ in range(args.repeats):
                start = time.perf_counter()
                inferer.predict(network, x, 300)
                times.append(time.perf_counter() - start)
        result.update(seconds_per_forward_step=round(sorted(times)[len(times) // 2], 3), nfe_per_step=2)
        return result
    case = load_datalist(config.get_parsed_content("datalist"), "test")[0]
    volume = Dataset([case], config.get_parsed_content("preprocessing"))[0]["image"].as_tensor().float()
    z0 = int(volume.shape[-1] * 0.5)
    slices = torch.stack([volume[..., z] for z in range(z0, z0 + args.slices)]).to(device)
    inferer.nfe = 0
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    before = _status("VmRSS")
    Path("/proc/self/clear_refs").write_text("5")  # reset the peak resident size
    start = time.perf_counter()
    with torch.no_grad(), torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
        inferer(slices, network)
    seconds = time.perf_counter() - start
    peak = (torch.cuda.max_memory_allocated() if device.type == "cuda" else _status("VmHWM") - before)
    result.update(slices=args.slices, slice_shape=list(slices.shape[-2:]), downsample=config["downsample"],
                  nfe_per_slice=inferer.nfe / args.slices, seconds_per_slice=round(seconds / args.slices, 3),
                  peak_memory_MiB_per_slice=round(peak / 2**20 / args.slices, 2))
    return result


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--slices", type=int, default=8, help="slices per measurement (one batch)")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--only", choices=["maps", "step"])
    parser.add_argument("--overrides", default="{}", help=argparse.SUPPRESS)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(child(args)))
        return
    jobs = []
    if args.only in (None, "maps"):
        jobs += [(name, "maps", overrides) for name, overrides in DEFAULT_RUNS]
    if args.only in (None, "step"):
        jobs.append(("forward step, paper preset, 128x128", "step", {}))
    results = {}
    for name, only, overrides in jobs:
        cmd = [sys.executable, "-m", "diffusion_anomaly", "benchmark", "--what", "anofpdm-fast-mode", "--child",
               "--only", only, "--overrides", json.dumps(overrides),
               "--device", args.device, "--threads", str(args.threads), "--slices", str(args.slices),
               "--repeats", str(args.repeats)]
        preset = "paper" if only == "step" and not args.preset else args.preset
        if preset:
            cmd += ["--preset", preset]
        out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout.strip().splitlines()[-1]
        results[name] = json.loads(out)
        print(name, results[name], flush=True)
    if args.out:
        atomic_write_json(args.out, results)


if __name__ == "__main__":
    main()
