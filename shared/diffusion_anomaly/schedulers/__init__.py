from .disyre import DisyreScheduler

__all__ = ["DisyreScheduler"]
