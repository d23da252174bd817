"""Write a bundle's TorchScript model for the MONAI Deploy app (``app.py``).

``ckpt_export`` traces the bundle's network (``configs/export.json``) and embeds the configs the app's operator
reads: the bundle's ``inference.json`` and this folder's ``inference_deploy.json``. A bundle whose sampler reads
constants from a file beside its weights (AnoFPDM's ``models/constants.json``) gets them copied into the
embedded overlay, because an app has no bundle folder to read them from.

    python deploy/anomaly_map_app/export_model.py bundles/anofpdm model/model.ts
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

from monai.bundle import ConfigParser, ckpt_export

HERE = Path(__file__).resolve().parent
CONSTANT_KEYS = ("thr_cls", "delta_max", "settings")


def deploy_overlay(bundle: Path) -> dict:
    """This folder's overlay, plus the bundle's file-held constants where its inference config reads some."""
    overlay = json.loads((HERE / "inference_deploy.json").read_text())
    config = ConfigParser()
    config.read_config(str(bundle / "configs/inference.json"))
    if "constants_path" in config:
        config["bundle_root"] = str(bundle)
        constants = json.loads(Path(config.get_parsed_content("constants_path")).read_text())
        overlay["constants"] = {k: constants[k] for k in CONSTANT_KEYS if k in constants}
    return overlay


def export(bundle: Path, filepath: Path) -> Path:
    bundle = bundle.resolve()
    if not (bundle / "configs/export.json").is_file():
        raise SystemExit(f"{bundle}: no configs/export.json, so no network to export (a bundle without a network "
                         "has no TorchScript model)")
    filepath.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        overlay = Path(tmp) / "inference_deploy.json"
        overlay.write_text(json.dumps(deploy_overlay(bundle), indent=2))
        configs = [str(bundle / "configs/inference.json"), str(bundle / "configs/export.json"), str(overlay)]
        ckpt_export(net_id="network_ts", filepath=str(filepath), ckpt_file=str(bundle / "models/model.pt"),
                    meta_file=str(bundle / "configs/metadata.json"), config_file=configs, bundle_root=str(bundle))
    return filepath


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("bundle", type=Path, help="bundle folder (in this repository or unzipped from a release)")
    parser.add_argument("filepath", type=Path, help="TorchScript file to write, e.g. model/model.ts")
    args = parser.parse_args()
    print(f"wrote {export(args.bundle, args.filepath)}")


if __name__ == "__main__":
    main()
