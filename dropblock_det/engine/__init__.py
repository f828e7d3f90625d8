"""Training-loop pieces of dropblock-det."""
from .hooks import DropBlockScheduleHook, unwrap_model

__all__ = ["DropBlockScheduleHook", "unwrap_model"]
from .trainer import DropBlockTrainer, build_evaluator, load_config  # noqa: E402

__all__ += ["DropBlockTrainer", "build_evaluator", "load_config"]
