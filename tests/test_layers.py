"""The package's layers point one way: pure helpers at the bottom, transforms and inferers above, engines and
training on top. Every relative import (including those inside functions) is checked."""

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "shared/diffusion_anomaly"
LAYERS = {
    0: {"errors", "settings", "ops", "naming", "progress"},
    1: {"bundle", "standardisation", "bias_field", "postprocess", "io", "metrics", "schedulers", "networks"},
    2: {"data", "corruptions"},
    3: {"transforms", "samplers", "inferers"},
    4: {"training", "engines"},
    5: {"evaluation", "calibration"},
    6: {"cli", "__main__"},
}
LAYER_OF = {unit: layer for layer, units in LAYERS.items() for unit in units}
# imports between units of one layer are refused (inferers must not import transforms), except these
SIBLINGS = {("samplers", "transforms")}


def unit_of(module: str) -> str:
    """``transforms.writers`` -> ``transforms``; ``ops`` -> ``ops``."""
    return module.split(".")[0]


def relative_imports(path: Path) -> list[str]:
    """Modules (relative to the package) that ``path`` imports with relative imports."""
    here = path.relative_to(PACKAGE).with_suffix("").parts
    package = here[:-1] if here[-1] != "__init__" else here[:-1]
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.level > 0:
            base = list(package[: len(package) - (node.level - 1)])
            target = base + (node.module.split(".") if node.module else [])
            names = [a.name for a in node.names] if not node.module else []
            found += [".".join(target + [n]) for n in names] if names else [".".join(target)]
    return [m for m in found if m]


def violations(sources: dict[str, list[str]]) -> list[str]:
    """Imports from a lower layer into a higher one, and imports between units of one layer (but ``SIBLINGS``)."""
    problems = []
    for module, imports in sources.items():
        own = unit_of(module)
        for target in imports:
            other = unit_of(target)
            if other == own or other not in LAYER_OF:
                continue
            if LAYER_OF[other] > LAYER_OF[own]:
                problems.append(f"{module} (layer {LAYER_OF[own]}) imports {target} (layer {LAYER_OF[other]})")
            elif LAYER_OF[other] == LAYER_OF[own] and (own, other) not in SIBLINGS:
                problems.append(f"{module} imports {target} of the same layer {LAYER_OF[own]}")
    return problems


def test_every_module_is_in_a_layer():
    units = {p.stem if p.parent == PACKAGE else p.relative_to(PACKAGE).parts[0] for p in PACKAGE.rglob("*.py")}
    assert units - {"__init__"} <= set(LAYER_OF), sorted(units - set(LAYER_OF))


def test_imports_point_down():
    sources = {".".join(p.relative_to(PACKAGE).with_suffix("").parts): relative_imports(p)
               for p in PACKAGE.rglob("*.py")}
    assert "naming" in sources["transforms.writers"]  # the parser finds imports at all
    assert "engines.case_runner" in sources["evaluation.anomaly_evaluation"]
    assert violations(sources) == []


def test_the_check_catches_upward_and_sideways_imports():
    assert violations({"transforms.writers": ["engines.case_runner"]}) == [
        "transforms.writers (layer 3) imports engines.case_runner (layer 4)"]
    assert violations({"inferers.synomaly": ["transforms.postprocess"]}) == [
        "inferers.synomaly imports transforms.postprocess of the same layer 3"]
    assert violations({"samplers.slices": ["transforms.checks"], "transforms.labels": ["corruptions.tumour"]}) == []
