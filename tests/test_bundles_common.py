"""Every bundle: required files, a name MONAI Label accepts, valid metadata offline, complete config properties."""

from pathlib import Path

import pytest
from monai.bundle import ConfigWorkflow, verify_metadata

REPO = Path(__file__).resolve().parents[1]
SCHEMA = REPO / ".ci/meta_schema_20240725.json"
BUNDLES = sorted(p.parent.parent for p in (REPO / "bundles").glob("*/configs/metadata.json"))
TRAINABLE = [b for b in BUNDLES if (b / "configs/train.json").exists()]


def test_there_are_bundles():
    assert {b.name for b in BUNDLES} >= {"intensity_baseline", "disyre"}


@pytest.mark.parametrize("bundle", BUNDLES, ids=[b.name for b in BUNDLES])
def test_layout_and_name(bundle):
    for name in ("LICENSE", "configs/metadata.json", "configs/inference.json", "configs/evaluate.json",
                 "configs/logging.conf", "docs/README.md"):
        assert (bundle / name).is_file(), f"{bundle.name} lacks {name}"
    for word in ("detection", "segmentation", "classification"):
        assert word not in bundle.name  # MONAI Label guesses the task type from the folder name


@pytest.mark.parametrize("bundle", TRAINABLE, ids=[b.name for b in TRAINABLE])
def test_trainable_bundles_ship_training_configs_and_weights(bundle):
    for name in ("configs/train.json", "configs/multi_gpu_train.json", "models/model.pt"):
        assert (bundle / name).is_file(), f"{bundle.name} lacks {name}"
    assert (bundle / "models/model.pt").stat().st_size <= 25 * 2**20


@pytest.mark.parametrize("bundle", BUNDLES, ids=[b.name for b in BUNDLES])
def test_metadata_verifies_offline(bundle):
    verify_metadata(meta_file=str(bundle / "configs/metadata.json"), filepath=str(SCHEMA))


@pytest.mark.parametrize("bundle", BUNDLES, ids=[b.name for b in BUNDLES])
def test_inference_workflow_properties(bundle):
    wf = ConfigWorkflow(config_file=str(bundle / "configs/inference.json"), workflow_type="infer",
                        logging_file=False)
    wf.initialize()
    assert wf.check_properties() == []
    assert Path(wf.bundle_root).resolve() == bundle.resolve()  # found from the config's location


@pytest.mark.parametrize("bundle", TRAINABLE, ids=[b.name for b in TRAINABLE])
def test_train_workflow_properties(bundle):
    wf = ConfigWorkflow(config_file=str(bundle / "configs/train.json"), workflow_type="train", logging_file=False)
    wf.initialize()
    assert wf.check_properties() == []


def _base(config: Path) -> str | None:
    """The config an overlay is merged onto (None for a base config)."""
    name = config.name
    if name in ("train.json", "inference.json"):
        return None
    return "train.json" if name.startswith(("train_", "multi_gpu_train")) else "inference.json"


CONFIGS = [(b, c) for b in BUNDLES for c in sorted((b / "configs").glob("*.json")) if c.name != "metadata.json"]


@pytest.mark.parametrize("bundle,config", CONFIGS, ids=[f"{b.name}/{c.name}" for b, c in CONFIGS])
def test_every_config_parses_and_its_references_resolve(bundle, config):
    from monai.bundle import ConfigParser

    base = _base(config)
    files = [str(config)] if base is None else [str(bundle / "configs" / base), str(config)]
    parser = ConfigParser()
    parser.read_config(files)
    parser.read_meta(str(bundle / "configs/metadata.json"))
    parser["bundle_root"] = str(bundle)
    parser.parse()
    for key in parser.get():
        if key != "imports":  # resolves every @reference without instantiating or evaluating anything
            parser.get_parsed_content(key, instantiate=False, eval_expr=False)


EXPORTABLE = [b for b in TRAINABLE if (b / "configs/export.json").exists()]


@pytest.mark.parametrize("bundle", EXPORTABLE, ids=[b.name for b in EXPORTABLE])
def test_net_in_out_and_torchscript_export(bundle, tmp_path):
    import torch
    from monai.bundle import ckpt_export, verify_net_in_out

    from diffusion_anomaly.networks import load_weights

    configs = [str(bundle / "configs/inference.json"), str(bundle / "configs/export.json")]
    meta = str(bundle / "configs/metadata.json")
    # the metadata describes the pipeline (one 3-D volume in, one map out); the wrapper runs the 2-D network
    # slice by slice, so a 16 x 16 x 16 volume checks channels and dtype
    verify_net_in_out(net_id="network_verify", meta_file=meta, config_file=configs, device="cpu", any=16,
                      bundle_root=str(bundle), extra_forward_args={"timestep": 10})
    ts = tmp_path / "model.ts"
    ckpt_export(net_id="network_ts", filepath=str(ts), ckpt_file=str(bundle / "models/model.pt"), meta_file=meta,
                config_file=configs, bundle_root=str(bundle))
    loaded = torch.jit.load(str(ts))
    from monai.bundle import ConfigParser

    parser = ConfigParser()
    parser.read_config(configs)
    parser["bundle_root"] = str(bundle)
    eager = load_weights(parser.get_parsed_content("network_def"), bundle / "models/model.pt")
    torch.manual_seed(0)
    x, t = torch.rand(2, 1, 48, 64) * 2 - 1, torch.tensor([10, 700])
    labels = torch.tensor([0, 2]) if getattr(eager, "num_class_embeds", None) else None
    with torch.no_grad():
        if labels is None:
            expected, exported = eager(x, t), loaded(x, t)
        else:  # the export takes the class labels as its third positional input
            expected, exported = eager(x, t, class_labels=labels), loaded(x, t, labels)
    assert (exported - expected).abs().max() < 1e-4


ALL_JSON = [c for b in BUNDLES for c in sorted((b / "configs").glob("*.json"))]


@pytest.mark.parametrize("config", ALL_JSON, ids=[f"{c.parent.parent.name}/{c.name}" for c in ALL_JSON])
def test_configs_reference_ids_by_name_not_by_list_position(config):
    """`@train#handlers#1` or `handlers[:4]` silently point at another handler when a list changes."""
    import re

    text = config.read_text()
    assert not re.findall(r"@[\w#]*#\d+", text), "reference to a list element by position"
    assert not re.findall(r"@[\w#]+\[[\d:\-]+\]", text), "slice of a referenced list"


@pytest.mark.parametrize("bundle", TRAINABLE, ids=[b.name for b in TRAINABLE])
def test_rank0_handlers_are_left_out_on_other_ranks_only(bundle):
    """The DDP overlay keeps every shared handler (LR schedule, clipping, EMA, resume) on every rank and adds
    the writers and loggers on rank 0 only."""
    from monai.bundle import ConfigParser

    def targets(handlers):
        return " ".join(h if isinstance(h, str) else h["_target_"] for h in handlers)

    ema = ["ema"] if bundle.name == "anofpdm" else []  # the EMA handler has its own id, train#ema
    for rank, expected in ((0, ema + ["shared", "rank0"]), (1, ema + ["shared"])):
        parser = ConfigParser()
        parser.read_config([str(bundle / "configs/train.json"), str(bundle / "configs/multi_gpu_train.json")])
        assert "ResumeCheckpoint" in targets(parser["train#handlers"])
        assert "FinalWeights" in targets(parser["train#rank0_handlers"])
        assert "FinalWeights" not in targets(parser["train#handlers"])
        parser["train#handlers"], parser["train#rank0_handlers"], parser["rank"] = ["shared"], ["rank0"], rank
        if ema:
            parser["train#ema"] = "ema"
        assert parser.get_parsed_content("train#trainer#train_handlers") == expected
