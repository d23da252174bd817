"""Derive AnoFPDM's thr_cls and Delta_max from validation slices with image-level labels only.

No pixel label is read: validation entries are reduced to their image, brain mask and (if present) the
per-slice ``slice_labels`` that ``python -m diffusion_anomaly prepare-dataset`` stores for data sets with lesion
masks. If the validation split has no unhealthy slice (the demo data: healthy volunteers), unhealthy slices are
made with the training tumour simulator and only their image-level label (1) is kept.

thr_cls: for q in linspace(0.005, 0.095, 100), candidate = q-quantile of the healthy slices' similarities;
errors = #(unhealthy with sim > candidate) + #(healthy with sim < candidate); the first candidate with the
fewest errors. Delta_max[m] = max over unhealthy slices of max_t Delta_{t,m}. Both depend on the inference
settings (t_max, step_stride, guidance, ...), which are stored with them in ``models/constants.json``.

Usage: python -m diffusion_anomaly derive-anofpdm-constants [--bundle bundles/anofpdm] [--stride 3] [--out PATH]
           [--config-override step_stride=1 ...]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch
from monai.bundle import ConfigParser
from monai.data import Dataset
from tqdm import tqdm

from diffusion_anomaly.data import load_datalist
from diffusion_anomaly.inferers import cosine_similarity
from diffusion_anomaly.inferers.anofpdm import CONSTANT_SETTINGS
from diffusion_anomaly.io import atomic_write_json
from diffusion_anomaly.networks import load_weights
from diffusion_anomaly.transforms import RandTumourd, range_change

from . import REPO

IMAGE_LEVEL_KEYS = ("image", "foreground_mask", "slice_labels", "case", "subject")


def choose_thr_cls(healthy: np.ndarray, unhealthy: np.ndarray) -> float:
    """The reference's grid: quantiles 0.005..0.095 of the healthy similarities, fewest misclassifications."""
    candidates = [float(np.quantile(healthy, q)) for q in np.linspace(0.005, 0.095, 100)]
    errors = [int((unhealthy > c).sum() + (healthy < c).sum()) for c in candidates]
    return candidates[int(np.argmin(errors))]  # argmin: the first of equally good candidates


def validation_slices(config: ConfigParser, stride: int, min_fraction: float, seed: int):
    """Per validation volume: slices (N, C, H, W) in [-1, 1] and their image-level labels; plus whether the
    unhealthy slices are simulated. Volumes are kept apart because their slice sizes differ."""
    entries = [{k: v for k, v in e.items() if k in IMAGE_LEVEL_KEYS}
               for e in load_datalist(config.get_parsed_content("datalist"), "validation")]
    dataset = Dataset(entries, config.get_parsed_content("preprocessing"))
    volumes: list[tuple[torch.Tensor, torch.Tensor, np.ndarray]] = []  # slices, masks, labels (edited in place)
    for i in range(len(dataset)):
        item = dataset[i]
        image, brain = torch.as_tensor(item["image"]), torch.as_tensor(item["foreground_mask"])
        slice_labels = entries[i].get("slice_labels")
        zs = [z for z in range(0, image.shape[-1], stride) if float(brain[..., z].float().mean()) >= min_fraction]
        if zs:
            labels = np.array([int(slice_labels[z]) if slice_labels is not None else 0 for z in zs])
            volumes.append((torch.stack([image[..., z] for z in zs]).float(),
                            torch.stack([brain[..., z] for z in zs]), labels))
    if not volumes:
        raise SystemExit("no validation slice has enough brain; lower --min-brain-fraction")
    simulated = not any(v[2].any() for v in volumes)
    if simulated:  # a tumour into every other healthy slice; only the image-level label is kept
        painter = RandTumourd(prob=1.0)
        painter.set_random_state(seed)
        to_network_range = range_change(config.get_parsed_content("intensity"))  # as train.json after the tumour
        for slices, brains, labels in volumes:
            for j in range(1, len(slices), 2):
                unit = {"image": (slices[j] + 1) / 2 * (brains[j] > 0), "foreground_mask": brains[j]}
                painted = painter(unit)
                if painted["label"].any():
                    slices[j] = to_network_range({"image": painted["image"].float()})["image"]
                    labels[j] = 1
    return [(slices, labels) for slices, _, labels in volumes], simulated


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bundle", type=Path, default=REPO / "bundles/anofpdm")
    parser.add_argument("--datalist", type=Path, help="datalist with a 'validation' split (default: the config's)")
    parser.add_argument("--stride", type=int, default=3, help="use every n-th axial slice")
    parser.add_argument("--min-brain-fraction", type=float, default=0.05)
    parser.add_argument("--seed", type=int, default=2024)
    parser.add_argument("--out", type=Path, help="default: <bundle>/models/constants.json")
    parser.add_argument("--config-override", nargs="*", default=[], metavar="KEY=JSON",
                        help="inference settings to derive for, e.g. step_stride=1")
    args = parser.parse_args(argv)

    config = ConfigParser()
    config.read_config(str(args.bundle / "configs/inference.json"))
    config["bundle_root"] = str(args.bundle.resolve())
    if args.datalist:
        config["datalist"] = str(args.datalist.resolve())
    for item in args.config_override:
        key, value = item.split("=", 1)
        config[key] = json.loads(value)
    config["constants"] = {"thr_cls": 1.0, "delta_max": [1.0]}  # placeholders: the pass needs neither
    network = load_weights(config.get_parsed_content("network_def"), config.get_parsed_content("checkpoint"))
    inferer = config.get_parsed_content("inferer", instantiate=True, lazy=False)

    volumes, simulated = validation_slices(config, args.stride, args.min_brain_fraction, args.seed)
    labels = np.concatenate([v[1] for v in volumes])
    print(f"{len(labels)} validation slices: {int((labels == 0).sum())} healthy, {int(labels.sum())} unhealthy"
          + (" (simulated tumours)" if simulated else ""))
    sim_batches, dmax_batches = [], []
    batch = inferer.slice_batch_size
    with torch.no_grad():
        for slices, _ in tqdm(volumes, desc="forward process", unit="volume"):
            for i in range(0, len(slices), batch):
                curves = inferer.slice_curves(slices[i : i + batch], network)
                sim_batches.append(cosine_similarity(curves.mse_guided, curves.mse_reference).numpy())
                dmax_batches.append(curves.delta.amax(2).numpy())
    sims, dmax = np.concatenate(sim_batches), np.concatenate(dmax_batches)
    healthy, unhealthy = sims[labels == 0], sims[labels == 1]
    if len(healthy) == 0 or len(unhealthy) == 0:
        raise SystemExit("need healthy and unhealthy validation slices")
    thr_cls = choose_thr_cls(healthy, unhealthy)
    delta_max = dmax[labels == 1].max(0)
    if (delta_max <= 0).any():
        raise SystemExit("the guided and the reference predictions never differ on unhealthy slices: is the "
                         "network trained with class labels?")
    accuracy = float(((sims <= thr_cls) == (labels == 1)).mean())
    settings = {k: config.get_parsed_content(k) for k in CONSTANT_SETTINGS}
    out = args.out or args.bundle / "models/constants.json"
    atomic_write_json(out, {
        "thr_cls": thr_cls, "delta_max": [float(v) for v in delta_max], "settings": settings,
        "validation": {"healthy_slices": int(len(healthy)), "unhealthy_slices": int(len(unhealthy)),
                       "simulated_tumours": simulated, "slice_stride": args.stride,
                       "classification_accuracy": accuracy, "nfe_per_slice": inferer.nfe / len(labels)},
        "command": "python -m diffusion_anomaly derive-anofpdm-constants " + " ".join(
            f"--config-override {o}" for o in args.config_override)})
    print(f"thr_cls {thr_cls:.6f}, delta_max {[round(float(v), 6) for v in delta_max]}, validation slice "
          f"accuracy {accuracy:.3f}; wrote {out}")


if __name__ == "__main__":
    main()
