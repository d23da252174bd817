"""Wrappers that let MONAI's export and verification tools handle a timestep-conditioned UNet."""

from __future__ import annotations

import torch


class TimestepWrapper(torch.nn.Module):
    """``forward(x, timestep=...)`` with an integer timestep, for ``verify_net_in_out`` (its CLI cannot pass
    tensors). ``class_label`` is forwarded to class-conditioned networks."""

    def __init__(self, network: torch.nn.Module, timestep: int = 1, class_label: int | None = None):
        super().__init__()
        self.network, self.timestep, self.class_label = network, timestep, class_label

    def forward(self, x: torch.Tensor, timestep: int | None = None) -> torch.Tensor:
        t = torch.full((x.shape[0],), self.timestep if timestep is None else timestep, dtype=torch.long,
                       device=x.device)
        if self.class_label is None:
            return self.network(x, t)
        y = torch.full((x.shape[0],), self.class_label, dtype=torch.long, device=x.device)
        return self.network(x, t, class_labels=y)


def trace_for_export(network: torch.nn.Module, example_shape: tuple[int, ...], timestep: int = 1) -> torch.jit.ScriptModule:
    """TorchScript by tracing (scripting fails on DiffusionModelUNet), with inputs ``(x, t)``."""
    x = torch.rand(example_shape)
    t = torch.full((example_shape[0],), timestep, dtype=torch.long)
    return torch.jit.trace(network.eval(), (x, t), check_trace=False)
