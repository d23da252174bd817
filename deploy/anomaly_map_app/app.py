"""MONAI Deploy app: one NIfTI volume in, the bundle's anomaly map out (NIfTI, uint8).

The model is a bundle's TorchScript file written by ``export_model.py`` (``HOLOSCAN_MODEL_PATH`` or ``-m``); it
carries the bundle's ``inference.json`` and this folder's ``inference_deploy.json``, which the SDK's
``MonaiBundleInferenceOperator`` reads. The bundle's sampler (its ``inferer``) comes from the ``diffusion-anomaly``
package, installed beside the SDK, since TorchScript carries no Python code. The SDK casts image outputs to
uint8, so the overlay scales the map: 0-255 stands for scores 0-2 (the full range of a difference of images in
[-1, 1]).

    python deploy/anomaly_map_app/app.py -i input.nii.gz -o output/ -m model/model.ts
"""

from __future__ import annotations

import logging
from pathlib import Path

import nibabel as nib
import numpy as np
from monai.deploy.conditions import CountCondition
from monai.deploy.core import Application, Image, IOType, Operator, OperatorSpec
from monai.deploy.operators.monai_bundle_inference_operator import (
    BundleConfigNames,
    IOMapping,
    MonaiBundleInferenceOperator,
)

from diffusion_anomaly.errors import InputDataError
from diffusion_anomaly.io import save_nifti

# inference_deploy.json makes "inferer" return the map only and replaces "postprocessing"; the SDK's stock
# operator reads both (the bundle's metadata describes its input and output: one 3-D volume in, one map out).
CONFIG_NAMES = BundleConfigNames(config_names=["inference", "inference_deploy"])
NIFTI_SUFFIXES = (".nii", ".nii.gz")


def find_nifti(path: Path) -> Path:
    """``path`` itself if it is a NIfTI file, else the only NIfTI file in the folder ``path``."""
    if path.is_file():
        return path
    if not path.is_dir():
        raise InputDataError(path, "input does not exist")
    found = sorted(p for p in path.iterdir() if p.name.endswith(NIFTI_SUFFIXES))
    if len(found) != 1:
        raise InputDataError(path, f"expected exactly one NIfTI file (.nii, .nii.gz) in the input folder, found "
                                   f"{len(found)}")
    return found[0]


class NiftiVolumeLoader(Operator):
    """Reads one NIfTI volume and emits it as an SDK ``Image`` whose metadata keeps the affine (the SDK's own
    ``NiftiDataLoader`` emits a bare array, so orientation and the written map's geometry would be lost)."""

    def __init__(self, fragment, *args, input_path: Path, **kwargs):
        self.input_path = Path(input_path)
        super().__init__(fragment, *args, **kwargs)

    def setup(self, spec: OperatorSpec):
        spec.output("image")

    def compute(self, op_input, op_output, context):
        path = find_nifti(self.input_path)
        try:
            nii = nib.load(path)
            data = np.asarray(nii.dataobj, dtype=np.float32)
        except Exception as err:  # nibabel raises several types for unreadable files
            raise InputDataError(path, f"not a readable NIfTI file ({type(err).__name__}: {err})") from err
        if data.ndim != 3:
            raise InputDataError(path, f"expected a 3-D volume, got shape {data.shape}")
        logging.info("%s: volume %s", path, data.shape)
        meta = {"affine": nii.affine, "original_affine": nii.affine, "spacing": np.asarray(nii.header.get_zooms()[:3]),
                "spatial_shape": np.asarray(data.shape), "original_channel_dim": "no_channel",
                "filename_or_obj": str(path)}
        op_output.emit(Image(data, meta), "image")


class NiftiMapWriter(Operator):
    """Writes the uint8 map as ``<output>/<input name>_anomaly_map.nii.gz`` in the input's voxel grid (atomically)."""

    def __init__(self, fragment, *args, output_dir: Path, **kwargs):
        self.output_dir = Path(output_dir)
        super().__init__(fragment, *args, **kwargs)

    def setup(self, spec: OperatorSpec):
        spec.input("pred")

    def compute(self, op_input, op_output, context):
        image = op_input.receive("pred")
        meta = image.metadata()
        data = np.swapaxes(image.asnumpy(), 0, 2)  # the SDK hands out (D, H, W); NIfTI voxel order is (W, H, D)
        source = Path(str(meta.get("filename_or_obj", "image")))
        name = source.name.removesuffix(".gz").removesuffix(".nii") + "_anomaly_map.nii.gz"
        path = save_nifti(data, np.asarray(meta["original_affine"]), self.output_dir / name, dtype=np.uint8)
        logging.info("wrote %s %s uint8 (max %d)", path, data.shape, int(data.max()))


class AnomalyMapApp(Application):
    """NIfTI loader -> bundle inference (TorchScript model + the bundle's sampler) -> NIfTI writer."""

    def compose(self):
        app_context = Application.init_app_context(self.argv)
        loader = NiftiVolumeLoader(self, CountCondition(self, 1), input_path=Path(app_context.input_path),
                                   name="nifti_loader")
        inference = MonaiBundleInferenceOperator(
            self, app_context=app_context, bundle_config_names=CONFIG_NAMES, name="bundle_inference",
            input_mapping=[IOMapping("image", Image, IOType.IN_MEMORY)],
            output_mapping=[IOMapping("pred", Image, IOType.IN_MEMORY)])
        writer = NiftiMapWriter(self, output_dir=Path(app_context.output_path), name="nifti_writer")
        self.add_flow(loader, inference, {("image", "image")})
        self.add_flow(inference, writer, {("pred", "pred")})


if __name__ == "__main__":
    AnomalyMapApp().run()
