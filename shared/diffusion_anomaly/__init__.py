"""Diffusion-model anomaly detection for medical images, shipped as MONAI bundles.

Sub-packages: ``io`` (atomic writers), ``data`` (input checks, datalists, dataset layouts),
``transforms`` (MONAI dictionary transforms), ``samplers`` (slice and patch sampling).
"""

__version__ = "0.1.0"
