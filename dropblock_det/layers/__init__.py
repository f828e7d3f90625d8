"""DropBlock and the structured-dropout family as plain PyTorch layers (no detectron2 here).

Every regularizer subclasses `KeepProbRegularizer` (a schedulable `keep_prob`, identity in
eval mode); `build_regularizer` picks one by name; `LinearKeepProbSchedule` ramps keep_prob
as a pure function of the iteration.
"""
from .base import (
    REGULARIZER_TYPES,
    KeepProbRegularizer,
    as_regularizer_factory,
    build_regularizer,
    masked_scale,
    regularize_add_relu,
    relu_then_regularize,
)
from .drop_block import (
    GAMMA_MODES,
    IMPLS,
    DropBlock2d,
    clip_block_size,
    drop_block_2d,
    drop_block_gamma,
    expected_drop_fraction,
    triton_path_chosen,
    triton_unavailable_reason,
)
from .dropout import DropPath, Dropout, SpatialDropout, drop_path, dropout, spatial_dropout
from .schedule import LinearKeepProbSchedule, iter_regularizers, scaled_keep_prob, set_keep_prob

__all__ = [
    "KeepProbRegularizer",
    "build_regularizer",
    "as_regularizer_factory",
    "masked_scale",
    "regularize_add_relu",
    "relu_then_regularize",
    "REGULARIZER_TYPES",
    "drop_block_2d",
    "DropBlock2d",
    "drop_block_gamma",
    "expected_drop_fraction",
    "clip_block_size",
    "GAMMA_MODES",
    "IMPLS",
    "triton_path_chosen",
    "triton_unavailable_reason",
    "dropout",
    "spatial_dropout",
    "drop_path",
    "Dropout",
    "SpatialDropout",
    "DropPath",
    "LinearKeepProbSchedule",
    "iter_regularizers",
    "set_keep_prob",
    "scaled_keep_prob",
]
