"""Training-loop pieces of dropblock-det."""
from .hooks import DropBlockScheduleHook, unwrap_model

__all__ = ["DropBlockScheduleHook", "unwrap_model"]
