"""Case-by-case inference for bundles: one bad scan is recorded and skipped, the batch job goes on."""

from __future__ import annotations

import json
import os
import shutil
import time
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping

import torch
from monai.data import MetaTensor, list_data_collate
from monai.inferers import Inferer
from tqdm import tqdm

from ..errors import CasesFailedError, InputDataError, check_writable_folder
from ..io.atomic import atomic_write_json
from ..naming import case_name, safe_name  # noqa: F401 (re-exported: the runner's names)
from ..settings import check_bool


def input_error(err: BaseException) -> InputDataError | None:
    """The ``InputDataError`` behind ``err`` (MONAI wraps transform errors in RuntimeError), if any."""
    seen: set[int] = set()
    current: BaseException | None = err
    while current is not None and id(current) not in seen:
        if isinstance(current, InputDataError):
            return current
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return None


def describe_error(err: BaseException, source: str | None = None) -> str:
    """One line for a failure report: our InputDataError, else the innermost cause (a reader's own error) rather
    than MONAI's generic "applying transform" wrapper, after ``source`` (the case's image) when given, since such
    errors (an ``EOFError`` of a truncated gzip) do not name the file."""
    cause = input_error(err)
    if cause is not None:
        return str(cause)
    root, seen = err, set()
    while id(root) not in seen:
        inner = root.__cause__ or root.__context__
        if inner is None:
            break
        seen.add(id(root))
        root = inner
    text = f"{type(root).__name__}: {root}"
    return f"{source}: {text}" if source and source not in text else text


def image_source(entry) -> str | None:
    """The image file(s) of a datalist entry, for error messages."""
    image = entry.get("image") if isinstance(entry, Mapping) else None
    if isinstance(image, (list, tuple)):
        return ", ".join(str(i) for i in image)
    return str(image) if isinstance(image, (str, os.PathLike)) else None


def infer_item(
    item: dict, inferer: Inferer, network: torch.nn.Module | None, device: torch.device | str = "cpu",
    amp: bool = True,
) -> dict:
    """Run ``inferer(image[None], network)`` on one preprocessed item and add its outputs to the item.

    The inferer may return a tensor (the anomaly map, stored as ``pred``) or a dict of tensors (``pred``,
    ``restoration``, ``mask``, ...). Outputs are on the CPU (float32 unless integer, e.g. stage counts) and carry
    the image's meta data, so MONAI's
    ``Invertd`` can map them back to the input grid. bf16 autocast is used on CUDA when ``amp`` is set.
    """
    device = torch.device(device)
    batch = list_data_collate([item])
    inputs = batch["image"].to(device)
    with torch.no_grad(), torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp and device.type == "cuda"):
        outputs = inferer(inputs, network)  # type: ignore[arg-type]  # None: a network-free baseline
    if not isinstance(outputs, Mapping):
        outputs = {"pred": outputs}
    result = dict(item)
    image = item["image"]
    for key, value in outputs.items():
        value = torch.as_tensor(value)[0].detach().cpu()
        value = value.float() if value.is_floating_point() else value
        if isinstance(image, MetaTensor) and tuple(value.shape[1:]) == tuple(image.shape[1:]):
            value = MetaTensor(value, meta=dict(image.meta), applied_operations=list(image.applied_operations))
        result[key] = value
    return result


@dataclass
class CaseOutcome:
    """One case of :func:`run_cases`: the inferred (and post-processed) ``item``, or the ``error`` that stopped it."""

    name: str
    item: dict | None = None
    seconds: float = 0.0
    nfe: int = 0
    error: BaseException | None = None
    source: str | None = None  # the case's image file(s), for the error message


def run_cases(dataset: Any, inferer: Inferer, network: torch.nn.Module | None, device: torch.device | str = "cpu",
              amp: bool = True, postprocessing: Callable | None = None, desc: str = "cases", progress: bool = True,
              skip: Callable[[str], bool] | None = None) -> Iterator[CaseOutcome]:
    """The one per-case loop of inference and evaluation: read and check a case's files, infer, post-process.

    A case whose files cannot be read or checked, or whose data makes inference fail (``input_error``), comes back
    with its ``error`` and the loop goes on; any other error (a typo in a config key, a broken transform) would fail
    every case, so it is raised with its traceback. ``skip(name)`` true: the case is not processed. The inferer's
    ``nfe`` counter (network evaluations), when it has one, is reported per case.
    """
    data = getattr(dataset, "data", [None] * len(dataset))
    for index in tqdm(range(len(dataset)), desc=desc, unit="case", disable=not progress):
        name = case_name(data[index]) if isinstance(data[index], Mapping) else str(index)
        if skip is not None and skip(name):
            continue
        start = time.perf_counter()
        try:
            prepared = dataset[index]
        except Exception as err:
            yield CaseOutcome(name, error=err, source=image_source(data[index]))
            continue
        nfe_before = getattr(inferer, "nfe", 0)
        try:
            item = infer_item(prepared, inferer, network, device, amp)
            if postprocessing is not None:
                postprocessing(item)
        except Exception as err:
            if input_error(err) is None:
                raise
            yield CaseOutcome(name, error=err)
            continue
        yield CaseOutcome(name, item, time.perf_counter() - start, getattr(inferer, "nfe", 0) - nfe_before)


def _read_failures(path: Path) -> list[dict]:
    """An earlier run's ``failures.json`` (empty if absent or unreadable)."""
    try:
        entries = json.loads(path.read_text())
    except (OSError, ValueError):
        return []
    return [e for e in entries if isinstance(e, dict)] if isinstance(entries, list) else []


class CaseRunner:
    """Preprocess, infer and post-process (e.g. invert and save) every case of ``dataset`` in turn.

    A case whose preprocessing, inference or writing fails is recorded in ``<output_dir>/failures.json`` with
    the error (bad input errors name the file) and skipped. The ``runner`` of inference configs (aliased as
    ``evaluator``, the id MONAI's bundle workflow requires). The per-case loop is :func:`run_cases`, which the
    evaluation shares.

    Args:
        dataset: a MONAI ``Dataset`` whose transform is the bundle's preprocessing.
        inferer: the method's inferer, called as ``inferer(inputs, network)``.
        network: the network (None for network-free baselines).
        postprocessing: callable applied to each output item (inversion, writers).
        device: where the network runs.
        output_dir: where ``failures.json`` and ``run_summary.json`` go.
        amp: bf16 autocast on CUDA.
        progress: show a progress bar over cases.
        skip_existing: skip cases whose ``<output_dir>/<case>/pred.nii.gz`` exists from an earlier run (resume a
            batch job that was killed); failed cases always run again.

    Reruns into the same ``output_dir``: temporary files left by a killed run (``.*.tmp``) are removed first;
    ``failures.json`` keeps the failures of cases this run did not process and replaces those it did; a case that
    fails loses its outputs from an earlier run, so no stale map is mistaken for a result.
    """

    def __init__(
        self,
        dataset: Any,
        inferer: Inferer,
        network: torch.nn.Module | None = None,
        postprocessing: Callable | None = None,
        device: torch.device | str = "cpu",
        output_dir: str | os.PathLike | None = None,
        amp: bool = True,
        progress: bool = True,
        skip_existing: bool = False,
    ):
        self.dataset, self.inferer, self.network = dataset, inferer, network
        self.postprocessing, self.device, self.amp, self.progress = postprocessing, device, amp, progress
        self.output_dir = Path(output_dir) if output_dir else None
        self.skip_existing = check_bool("skip_existing", skip_existing)

    def _record_failure(self, failed: list, name: str, err: BaseException, source: str | None = None) -> None:
        message = describe_error(err, source)
        failed.append({"case": name, "error": message,
                       "traceback": None if input_error(err) else traceback.format_exc()})
        tqdm.write(f"FAILED {name}: {message}")
        if self.output_dir is not None and (self.output_dir / name).is_dir():
            shutil.rmtree(self.output_dir / name)  # an earlier run's outputs are not this run's result

    def run(self) -> dict:
        """Process every case; raise ``CasesFailedError`` at the end if any failed (exit code 1 from the CLI)."""
        earlier: list[dict] = []
        if self.output_dir is not None:
            check_writable_folder(self.output_dir)  # before any inference, not after hours of it
            for leftover in self.output_dir.rglob(".*.tmp"):  # a killed run's unfinished writes
                leftover.unlink(missing_ok=True)
            earlier = _read_failures(self.output_dir / "failures.json")
        if self.network is not None:
            self.network.eval()
        done: list[str] = []
        failed: list[dict] = []
        seconds: list[float] = []
        data = getattr(self.dataset, "data", [None] * len(self.dataset))
        names = [case_name(d) if isinstance(d, Mapping) else str(i) for i, d in enumerate(data)]
        retry = {f.get("case") for f in earlier}

        def already_done(name: str) -> bool:
            return self.skip_existing and self.output_dir is not None and name not in retry \
                and (self.output_dir / name / "pred.nii.gz").is_file()

        skipped = [name for name in names if already_done(name)]
        for outcome in run_cases(self.dataset, self.inferer, self.network, self.device, self.amp,
                                 self.postprocessing, progress=self.progress, skip=already_done):
            if outcome.error is not None:
                self._record_failure(failed, outcome.name, outcome.error, outcome.source)
                continue
            seconds.append(outcome.seconds)
            done.append(outcome.name)
        summary = {"done": done, "failed": failed, "skipped_existing": skipped, "seconds_per_case": seconds}
        if self.output_dir is not None:
            processed = set(names)
            merged = [f for f in earlier if f.get("case") not in processed] + failed
            atomic_write_json(self.output_dir / "failures.json", merged)
            atomic_write_json(self.output_dir / "run_summary.json", summary)
        if failed:
            where = f" (listed in {self.output_dir / 'failures.json'})" if self.output_dir is not None else ""
            raise CasesFailedError(f"{len(failed)} of {len(failed) + len(done)} cases failed{where}: "
                                   + "; ".join(f"{f['case']}: {f['error']}" for f in failed[:5]))
        return summary
