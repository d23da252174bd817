"""Speed of a bundle's inferer: seconds per slice (at several batch sizes) and per demo volume, and NFE.

Builds the network and inferer from the bundle's own ``configs/inference.json`` (with overrides such as the
preset), feeds real brain slices (demo case mrbraintumor1, preprocessed by the bundle, padded/cropped to
``--slice-shape``) and reports medians over repeats after a warm-up. Weights: the shipped ones when the preset
matches them, else random (speed does not depend on weights). ``--bf16`` also times bf16 autocast and reports
the largest deviation of the map from fp32.

Examples:
  python -m diffusion_anomaly benchmark --what speed --bundle disyre --preset paper --slice-shape 192 160 --batch 1 8
  python -m diffusion_anomaly benchmark --what speed --bundle synomaly --batch 1 32 --volume
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import torch
from monai.bundle import ConfigParser
from monai.data import Dataset

from diffusion_anomaly.data import load_datalist
from diffusion_anomaly.networks import load_weights

from . import REPO


def timed(fn, repeats: int):
    fn()  # warm-up
    times, out = [], None
    for _ in range(repeats):
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        start = time.perf_counter()
        out = fn()
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return statistics.median(times), out


def centre(image: torch.Tensor, shape: tuple[int, int], fill: float) -> torch.Tensor:
    out = torch.full((image.shape[0], *shape), fill)
    h, w = min(shape[0], image.shape[1]), min(shape[1], image.shape[2])
    oy, ox, sy, sx = (shape[0] - h) // 2, (shape[1] - w) // 2, (image.shape[1] - h) // 2, (image.shape[2] - w) // 2
    out[:, oy : oy + h, ox : ox + w] = image[:, sy : sy + h, sx : sx + w]
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bundle", required=True)
    parser.add_argument("--preset", help="network preset (default: the bundle's)")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--slice-shape", nargs=2, type=int, default=[192, 160])
    parser.add_argument("--batch", nargs="+", type=int, default=[1, 8])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--volume", action="store_true", help="also time the whole demo volume")
    parser.add_argument("--bf16", action="store_true")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)

    bundle = REPO / "bundles" / args.bundle
    config = ConfigParser()
    config.read_config(str(bundle / "configs/inference.json"))
    config["bundle_root"] = str(bundle)
    shipped = config["preset"]
    if args.preset:
        config["preset"] = args.preset
    network = config.get_parsed_content("network_def")
    if config["preset"] == shipped and (bundle / "models/model.pt").is_file():
        network = load_weights(network, bundle / "models/model.pt", device)
        weights = "shipped"
    else:
        torch.manual_seed(0)
        for p in network.out.parameters():  # MONAI zero-initialises the output layer; keep the maps non-trivial
            torch.nn.init.normal_(p, std=0.05)
        network, weights = network.to(device).eval(), "random"
    inferer = config.get_parsed_content("inferer")
    case = load_datalist(config.get_parsed_content("datalist"), "test")[0]
    item = Dataset([case], config.get_parsed_content("preprocessing"))[0]
    volume = item["image"].as_tensor()[None].float()
    background = float(volume.min())
    z = int(volume.shape[-1] * 0.6)
    one = centre(volume[0, :, :, :, z], tuple(args.slice_shape), background)[None].to(device)

    result = {"bundle": args.bundle, "preset": config["preset"], "weights": weights, "device": str(device),
              "threads": args.threads, "slice_shape": args.slice_shape,
              "parameters_M": round(sum(p.numel() for p in network.parameters()) / 1e6, 2),
              "cpu_amx_bf16": ("amx_bf16" in Path("/proc/cpuinfo").read_text()
                               if Path("/proc/cpuinfo").exists() else None)}
    reference = None
    for bf16 in ([False, True] if args.bf16 else [False]):
        tag = "bf16" if bf16 else "fp32"

        def run(x):
            with torch.no_grad(), torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
                out = inferer(x, network)
            return (out["pred"] if isinstance(out, dict) else out).float()

        for b in args.batch:
            x = one.repeat(b, 1, 1, 1)
            inferer.nfe = 0
            seconds, pred = timed(lambda: run(x), args.repeats)
            result[f"{tag}_batch{b}_seconds_per_slice"] = round(seconds / b, 4)
            result[f"{tag}_batch{b}_slices_per_second"] = round(b / seconds, 2)
            result[f"{tag}_nfe_per_slice"] = inferer.nfe / (b * (args.repeats + 1))
            if b == args.batch[0]:
                if reference is None:
                    reference = pred
                else:
                    result["bf16_max_abs_diff_vs_fp32"] = float((pred - reference).abs().max())
        if args.volume:
            inferer.nfe = 0
            start = time.perf_counter()
            run(volume.to(device))
            result[f"{tag}_seconds_per_demo_volume"] = round(time.perf_counter() - start, 1)
            result[f"{tag}_nfe_per_demo_volume"] = inferer.nfe
            result["demo_volume_shape"] = list(volume.shape[2:])
    text = json.dumps(result, indent=2)
    print(text)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
