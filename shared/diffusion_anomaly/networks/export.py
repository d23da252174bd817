"""Wrappers that let MONAI's export and verification tools handle a timestep-conditioned UNet."""

from __future__ import annotations

from typing import Callable

import torch


class TimestepWrapper(torch.nn.Module):
    """``forward(x, timestep=...)`` with an integer timestep, for ``verify_net_in_out`` (its CLI cannot pass
    tensors). ``class_label`` is forwarded to class-conditioned networks. A volume (B, C, H, W, D), what the bundles'
    metadata describes as their input, goes through the 2-D network slice by slice along the last axis, as the
    bundles' inferers do."""

    def __init__(self, network: torch.nn.Module, timestep: int = 1, class_label: int | None = None):
        super().__init__()
        self.network, self.timestep, self.class_label = network, timestep, class_label

    def forward(self, x: torch.Tensor, timestep: int | None = None) -> torch.Tensor:
        if x.ndim == 5:
            b, c, h, w, d = x.shape
            out = self.forward(x.permute(0, 4, 1, 2, 3).reshape(b * d, c, h, w), timestep)
            return out.reshape(b, d, out.shape[1], h, w).permute(0, 2, 3, 4, 1)
        t = torch.full((x.shape[0],), self.timestep if timestep is None else timestep, dtype=torch.long,
                       device=x.device)
        if self.class_label is None:
            return self.network(x, t)
        y = torch.full((x.shape[0],), self.class_label, dtype=torch.long, device=x.device)
        return self.network(x, t, class_labels=y)


class PositionalClassLabels(torch.nn.Module):
    """``forward(x, t, class_labels)`` for MONAI's UNet, whose third positional argument is ``context``.

    The network's children are registered as this module's own, so its state dict has the network's keys and
    a checkpoint of the network loads into it (``ckpt_export`` loads weights after tracing).
    """

    _network_forward: Callable[..., torch.Tensor]

    def __init__(self, network: torch.nn.Module):
        super().__init__()
        object.__setattr__(self, "_network_forward", network.forward)  # not a registered submodule
        for name, child in network.named_children():
            self.add_module(name, child)

    def forward(self, x: torch.Tensor, timesteps: torch.Tensor, class_labels: torch.Tensor) -> torch.Tensor:
        return self._network_forward(x, timesteps, class_labels=class_labels)


def trace_for_export(network: torch.nn.Module, example_shape: tuple[int, ...],
                     timestep: int = 1) -> torch.jit.ScriptModule:
    """TorchScript by tracing (scripting fails on DiffusionModelUNet), with inputs ``(x, t)``, or
    ``(x, t, class_labels)`` for a class-conditioned network (``num_class_embeds`` set)."""
    x = torch.rand(tuple(example_shape))
    t = torch.full((example_shape[0],), timestep, dtype=torch.long)
    if getattr(network, "num_class_embeds", None):
        labels = torch.zeros(example_shape[0], dtype=torch.long)
        return torch.jit.trace(PositionalClassLabels(network.eval()).eval(), (x, t, labels), check_trace=False)
    return torch.jit.trace(network.eval(), (x, t), check_trace=False)
