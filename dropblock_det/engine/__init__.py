"""Training-loop pieces of dropblock-det."""
from .hooks import DropBlockScheduleHook, unwrap_model
from .config_checks import load_config
from .evaluation import build_evaluator
from .trainer import DropBlockTrainer

__all__ = ["DropBlockScheduleHook", "unwrap_model", "DropBlockTrainer", "build_evaluator", "load_config"]
