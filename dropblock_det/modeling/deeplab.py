"""DeepLabV3+ with DropBlock: a dilated ResNet backbone and an ASPP + decoder head.

Both compose detectron2's DeepLab project (`detectron2.projects.deeplab`: `DeepLabStem`,
`DeepLabV3PlusHead`, `add_deeplab_config`) with this package's regularizers:

- `build_dropblock_resnet_deeplab_backbone` (BACKBONE_REGISTRY): detectron2's
  `build_resnet_deeplab_backbone` (DeepLab stem, RES4_DILATION, RES5_DILATION with
  RES5_MULTI_GRID) built from :class:`DropBlockBottleneckBlock`, so MODEL.DROPBLOCK.RESNET
  and DROP_PATH_RATE place regularizers in it as in the detection backbones.
- `DropBlockDeepLabV3PlusHead` (SEM_SEG_HEADS_REGISTRY): `DeepLabV3PlusHead` with
  regularizers where MODEL.DROPBLOCK.SEM_SEG_HEAD.POSITIONS says: "aspp" after each of the
  four convolution branches of ASPP (conv+norm+ReLU; not the image-pooling branch, whose
  1x1 map would turn DropBlock into channel dropout), "project" after ASPP's 1x1 projection
  (before ASPP_DROPOUT), "decoder" after each conv of the decoder's fuse stages.
- `add_dropblock_deeplab_config`: the keys the segmentation configs need.

Same rule as the detection models: regularizers hold no parameters or buffers, so a
checkpoint of these models loads strictly into the stock detectron2 DeepLab model (and the
other way round) and, in eval mode, gives the same outputs wherever the stock model runs.

Two deliberate differences. The loss crops the logits, upsampled by COMMON_STRIDE, to the
targets (as inference crops them to the image), where the stock head fails on a batch whose
sides are not multiples of the stride. And with INPUT.CROP enabled, detectron2's ASPP pools with a fixed
kernel of the training crop's feature size and raises a ValueError at test time on any image
whose feature map is not a multiple of it (almost every PASCAL VOC image). `DropBlockASPP`
then pools globally instead, which is exactly what the fixed kernel does on a training crop.
Where the map is a multiple, the stock branch runs as it is (for a larger multiple that is
detectron2's stride-1 average pool, a local average, not image pooling).
"""
from typing import Any, Callable, Dict, List, Optional, Sequence

import torch
import torch.nn.functional as F
from detectron2.config import CfgNode, configurable, instantiate
from detectron2.layers import ASPP, ShapeSpec
from detectron2.modeling import BACKBONE_REGISTRY, SEM_SEG_HEADS_REGISTRY
from detectron2.modeling.backbone.resnet import BasicStem, ResNet
from torch import nn

try:
    from detectron2.projects.deeplab import DeepLabV3PlusHead, add_deeplab_config
    from detectron2.projects.deeplab.resnet import DeepLabStem
except ImportError as e:  # pragma: no cover - depends on how detectron2 was installed
    raise ImportError(
        "dropblock_det.modeling.deeplab needs detectron2's DeepLab project "
        f"(detectron2.projects.deeplab), which is not importable here ({e}). It ships inside "
        "the detectron2 v0.6 package; with detectron2 main, install detectron2 from a source "
        "checkout (pip install -e), which makes detectron2.projects.deeplab importable."
    ) from None

from ..config import (
    SEM_SEG_HEAD_POSITIONS,
    check_channels,
    check_placement,
    is_positive_int,
    regularizer_factory,
    validate_dropblock_config,
)
from ..layers import as_regularizer_factory
from ..layers.base import NotScriptable
from .conv_relu import conv_relu_then_regularize
from .resnet import check_resnet_outputs_and_norm, make_dropblock_resnet_stages, resnet_stage_arguments

__all__ = [
    "DropBlockASPP",
    "DropBlockDeepLabV3PlusHead",
    "add_dropblock_deeplab_config",
    "build_dropblock_resnet_deeplab_backbone",
]

RegularizerFactory = Callable[[], nn.Module]
def add_dropblock_deeplab_config(cfg: CfgNode) -> None:
    """Add the keys of detectron2's DeepLab project to `cfg` (in place), if not there yet.

    These are detectron2's `add_deeplab_config` keys, needed by every segmentation config of
    this project: SOLVER.POLY_LR_POWER, SOLVER.POLY_LR_CONSTANT_ENDING (the poly schedule of
    `dropblock_det.solver`), INPUT.CROP.SINGLE_CATEGORY_MAX_AREA, MODEL.SEM_SEG_HEAD.
    {LOSS_TYPE, PROJECT_FEATURES, PROJECT_CHANNELS, ASPP_CHANNELS, ASPP_DILATIONS,
    ASPP_DROPOUT, USE_DEPTHWISE_SEPARABLE_CONV} and MODEL.RESNETS.{RES4_DILATION,
    RES5_MULTI_GRID, STEM_TYPE}. Idempotent: a config that already has them (e.g. from
    `add_deeplab_config`) is left as it is, so calling both in any order is safe.

    Note detectron2's default PROJECT_CHANNELS [48] does not work with GN (48 is not a
    multiple of 32 groups); the GN configs of this project set 64.
    """
    if "POLY_LR_POWER" in cfg.SOLVER and "ASPP_CHANNELS" in cfg.MODEL.SEM_SEG_HEAD:
        return
    add_deeplab_config(cfg)


# ----------------------------------------------------------------------------- backbone
@BACKBONE_REGISTRY.register()
def build_dropblock_resnet_deeplab_backbone(cfg: CfgNode, input_shape: ShapeSpec) -> ResNet:
    """detectron2's dilated DeepLab ResNet with the regularizers MODEL.DROPBLOCK asks for.

    Reads the same MODEL.RESNETS keys as `build_resnet_deeplab_backbone` (DEPTH 50/101/152,
    STEM_TYPE "basic" or "deeplab", RES4_DILATION 1/2, RES5_DILATION 1/2/4, RES5_MULTI_GRID
    with one factor per res5 block); MODEL.DROPBLOCK.RESNET.* and DROP_PATH_RATE place
    regularizers in the blocks (children `dropblock_conv1`.., `drop_path`). With them off the
    module tree and state_dict keys are exactly the stock builder's.

    Returns a `ResNet` whose outputs (MODEL.RESNETS.OUT_FEATURES) have stride 4 (res2), 8
    (res3), and 16 or 8 for res4/res5 depending on the dilations.
    """
    validate_dropblock_config(cfg)
    resnets = cfg.MODEL.RESNETS
    depth = resnets.DEPTH
    num_blocks_per_stage = {50: [3, 4, 6, 3], 101: [3, 4, 23, 3], 152: [3, 8, 36, 3]}.get(depth)
    if num_blocks_per_stage is None:
        raise ValueError(
            f"MODEL.RESNETS.DEPTH={depth!r}: the DeepLab backbone needs bottleneck blocks "
            "(50, 101 or 152); detectron2's basic blocks have no dilation"
        )
    if resnets.STEM_TYPE == "basic":
        stem_class = BasicStem
    elif resnets.STEM_TYPE == "deeplab":
        stem_class = DeepLabStem
    else:
        raise ValueError(
            f"MODEL.RESNETS.STEM_TYPE={resnets.STEM_TYPE!r}: expected 'basic' or 'deeplab'"
        )
    if resnets.RES4_DILATION not in (1, 2):
        raise ValueError(f"MODEL.RESNETS.RES4_DILATION={resnets.RES4_DILATION!r}: expected 1 or 2")
    if resnets.RES5_DILATION not in (1, 2, 4):
        raise ValueError(
            f"MODEL.RESNETS.RES5_DILATION={resnets.RES5_DILATION!r}: expected 1, 2 or 4"
        )
    if resnets.RES4_DILATION == 2 and resnets.RES5_DILATION != 4:
        raise ValueError(
            f"MODEL.RESNETS.RES5_DILATION={resnets.RES5_DILATION!r}: must be 4 when "
            "MODEL.RESNETS.RES4_DILATION is 2 (output stride 8)"
        )
    multi_grid = list(resnets.RES5_MULTI_GRID)
    if len(multi_grid) != num_blocks_per_stage[3] or not all(is_positive_int(m) for m in multi_grid):
        raise ValueError(
            f"MODEL.RESNETS.RES5_MULTI_GRID={multi_grid}: expected one factor per res5 block "
            f"({num_blocks_per_stage[3]} for ResNet-{depth}), each an integer >= 1"
        )
    if any(resnets.DEFORM_ON_PER_STAGE):
        raise ValueError(
            f"MODEL.RESNETS.DEFORM_ON_PER_STAGE={list(resnets.DEFORM_ON_PER_STAGE)}: "
            "build_dropblock_resnet_deeplab_backbone has no deformable blocks"
        )
    out_features = check_resnet_outputs_and_norm(cfg)

    stem = stem_class(
        in_channels=input_shape.channels,
        out_channels=resnets.STEM_OUT_CHANNELS,
        norm=resnets.NORM,
    )
    # Stages after the last requested output are not built (no parameters without grads).
    stage_index = {"res2": 2, "res3": 3, "res4": 4, "res5": 5}
    last_stage = "res" + str(max(stage_index.get(f, 2) for f in out_features))
    stages = make_dropblock_resnet_stages(
        depth,
        res4_dilation=resnets.RES4_DILATION,
        res5_multi_grid=multi_grid,
        last_stage=last_stage,
        **resnet_stage_arguments(cfg, depth),
    )
    return ResNet(stem, stages, out_features=resnets.OUT_FEATURES).freeze(
        cfg.MODEL.BACKBONE.FREEZE_AT
    )


# ----------------------------------------------------------------------------- ASPP
class DropBlockASPP(NotScriptable, ASPP):
    """detectron2's ASPP with optional regularizers and image pooling for any input size.

    Children beyond the stock module (present only when enabled, parameter-free):
    `dropblock_branches` (one regularizer per convolution branch, applied after its
    conv+norm+ReLU) and `dropblock_project` (after the 1x1 projection's conv+norm+ReLU,
    before the stock `dropout`); each is handed its conv's ReLU (`conv_relu_then_regularize`:
    relu(x) is not kept for backward beside its output). Input (N, in_channels, H, W) ->
    (N, out_channels, H, W).

    Image pooling: when `pool_kernel_size` is None, or the input is a multiple of it, the
    stock pooling branch runs unchanged (on a larger multiple that is detectron2's stride-1
    average pool, kept for identical outputs); otherwise (where the stock ASPP raises) the
    input is pooled globally, as the fixed kernel does on the training-crop size it was set
    from.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        dilations: Sequence[int],
        *,
        branch_regularizer: Optional[RegularizerFactory] = None,
        project_regularizer: Optional[RegularizerFactory] = None,
        **aspp_kwargs,
    ):
        """
        Args:
            in_channels, out_channels, dilations, aspp_kwargs: as detectron2's `ASPP`
                (norm, activation, pool_kernel_size, dropout, use_depthwise_separable_conv).
            branch_regularizer: builds one regularizer; called once per convolution branch.
            project_regularizer: builds the regularizer after the projection.
            (A regularizer module is accepted for either and copied per use.)
        """
        super().__init__(in_channels, out_channels, dilations, **aspp_kwargs)
        branch_regularizer = as_regularizer_factory(branch_regularizer, "branch_regularizer")
        project_regularizer = as_regularizer_factory(project_regularizer, "project_regularizer")
        if branch_regularizer is not None:
            # convs[-1] is the image-pooling branch: left alone (its map is 1x1).
            self.dropblock_branches = nn.ModuleList(
                branch_regularizer() for _ in range(len(self.convs) - 1)
            )
        if project_regularizer is not None:
            self.dropblock_project = project_regularizer()

    def _image_pooling(self, x: torch.Tensor) -> torch.Tensor:
        branch = self.convs[-1]  # Sequential(pool, Conv2d 1x1 with activation)
        kernel = self.pool_kernel_size
        if kernel is None or (x.shape[-2] % kernel[0] == 0 and x.shape[-1] % kernel[1] == 0):
            return branch(x)
        return branch[1](F.adaptive_avg_pool2d(x, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        size = x.shape[-2:]
        branch_regularizers = self._modules.get("dropblock_branches")
        outputs = []
        for index, conv in enumerate(self.convs[:-1]):
            if branch_regularizers is None:
                outputs.append(conv(x))
            else:
                outputs.append(conv_relu_then_regularize(conv, branch_regularizers[index], x))
        pooled = self._image_pooling(x)
        outputs.append(F.interpolate(pooled, size=size, mode="bilinear", align_corners=False))
        y = torch.cat(outputs, dim=1)
        project_regularizer = self._modules.get("dropblock_project")
        if project_regularizer is None:
            y = self.project(y)
        else:
            y = conv_relu_then_regularize(self.project, project_regularizer, y)
        if self.dropout > 0:
            y = F.dropout(y, self.dropout, training=self.training)
        return y


# ----------------------------------------------------------------------------- head
# DeepLabV3PlusHead's loss types (it raises "Unexpected loss type" naming no key).
_LOSS_TYPES = ("cross_entropy", "hard_pixel_mining")
# The head's arguments _check_head_values reads (None: not given, left to DeepLabV3PlusHead).
_HEAD_CHECKED = ("common_stride", "aspp_dilations", "aspp_dropout", "loss_type", "train_size")


def _check_head_values(keys: Dict[str, str], strides: Sequence[int], *, common_stride: Any,
                       aspp_dilations: Optional[Sequence[Any]], aspp_dropout: Any, loss_type: Any,
                       train_size: Optional[Sequence[int]]) -> None:
    """ValueError naming the key (`keys` maps each argument to its config key, or to its
    own name) for a value detectron2's DeepLabV3PlusHead takes and fails on later, or refuses
    without naming a key: a common_stride other than the finest input's stride (a size
    mismatch in the loss at the first step), not 3 ASPP dilations (ASPP's AssertionError), a
    dropout outside [0, 1) (F.dropout's error at the first forward), an unknown loss type,
    a training crop the ASPP's input stride does not divide ("Crop size need to be divisible
    by encoder stride."). `strides`: those of the head's input features. A value that is None
    is not checked (not given: the stock head says what it needs)."""
    finest, coarsest = min(strides), max(strides)
    if common_stride is not None and (isinstance(common_stride, bool) or common_stride != finest):
        raise ValueError(
            f"{keys['common_stride']}={common_stride!r}: the head predicts at the stride of its finest "
            f"input feature ({keys['in_features']}: strides {sorted(set(strides))}) and upsamples "
            f"its logits by common_stride, so it must be {finest}")
    dilations = list(aspp_dilations) if aspp_dilations is not None else [1, 1, 1]
    if len(dilations) != 3 or any(isinstance(d, bool) or not isinstance(d, int) or d < 1 for d in dilations):
        raise ValueError(f"{keys['aspp_dilations']}={dilations!r}: ASPP takes 3 dilations >= 1 (e.g. [6, 12, 18])")
    if aspp_dropout is not None and (isinstance(aspp_dropout, bool) or not isinstance(aspp_dropout, (int, float))
                                     or not 0 <= aspp_dropout < 1):
        raise ValueError(f"{keys['aspp_dropout']}={aspp_dropout!r}: expected a dropout probability in [0, 1)")
    if loss_type is not None and loss_type not in _LOSS_TYPES:
        raise ValueError(f"{keys['loss_type']}={loss_type!r}: expected one of {list(_LOSS_TYPES)}")
    if train_size is not None and any(side % coarsest for side in train_size):
        raise ValueError(
            f"{keys['train_size']}={list(train_size)}: the ASPP pools over the crop's feature map at "
            f"stride {coarsest}, so its sides must be multiples of {coarsest}")


@SEM_SEG_HEADS_REGISTRY.register()
class DropBlockDeepLabV3PlusHead(NotScriptable, DeepLabV3PlusHead):
    """detectron2's `DeepLabV3PlusHead` with regularizers in ASPP and the decoder.

    Same inputs, outputs, losses and state_dict keys as the stock head (see the module
    docstring for the positions). Children beyond it, all parameter-free and present only
    when enabled: `DropBlockASPP.dropblock_branches` / `.dropblock_project` inside the ASPP
    stage, and `dropblock_decoder[<feature>]` (one regularizer per decoder conv, handed
    the conv's ReLU as in the ASPP).
    """

    @configurable
    def __init__(
        self,
        input_shape: Dict[str, ShapeSpec],
        *,
        dropblock: Optional[RegularizerFactory] = None,
        dropblock_positions: Sequence[str] = (),
        **deeplab_kwargs,
    ):
        """
        Args:
            input_shape, deeplab_kwargs: as detectron2's `DeepLabV3PlusHead` (project_channels,
                aspp_dilations, aspp_dropout, decoder_channels, common_stride, norm,
                train_size, loss_weight, loss_type, ignore_value, num_classes,
                use_depthwise_separable_conv).
            dropblock: builds one regularizer (e.g. `lambda: DropBlock2d(0.9, 7)`); called
                once per location (a regularizer module is copied per location instead).
                Needed when `dropblock_positions` is not empty.
            dropblock_positions: subset of ("aspp", "project", "decoder").
        """
        dropblock = as_regularizer_factory(dropblock)
        dropblock_positions = check_placement(
            "dropblock_positions", dropblock_positions, SEM_SEG_HEAD_POSITIONS, dropblock, type(self).__name__
        )
        norm = deeplab_kwargs.get("norm")
        check_channels(
            norm,
            {
                "project_channels": list(deeplab_kwargs.get("project_channels", [])),
                "decoder_channels": list(deeplab_kwargs.get("decoder_channels", [])),
            },
        )
        # A LazyConfig's `input_shape={"res2": L(ShapeSpec)(...), ...}` arrives as a mapping of
        # uninstantiated nodes (instantiate does not enter a mapping without _target_), and a
        # positional mapping would make the stock head's @configurable take it for a config.
        input_shape = {name: instantiate(shape) for name, shape in input_shape.items()}
        _check_head_values(
            {**{name: name for name in _HEAD_CHECKED}, "in_features": "input_shape"},
            [shape.stride for shape in input_shape.values()],
            **{name: deeplab_kwargs.get(name) for name in _HEAD_CHECKED},
        )
        super().__init__(input_shape=input_shape, **deeplab_kwargs)

        # Replace the stock ASPP by one with the same parameters (names and shapes) that adds
        # the regularizers and handles any test size. Its weights are initialised by the
        # stock ASPP's rules, in fresh draws (so not the values a stock head gets from the
        # same seed).
        aspp_feature = self.in_features[-1]
        stock_aspp = self.decoder[aspp_feature]["project_conv"]
        self.decoder[aspp_feature]["project_conv"] = DropBlockASPP(
            input_shape[aspp_feature].channels,
            deeplab_kwargs["decoder_channels"][-1],
            deeplab_kwargs["aspp_dilations"],
            norm=norm,
            activation=F.relu,
            pool_kernel_size=stock_aspp.pool_kernel_size,
            dropout=stock_aspp.dropout,
            use_depthwise_separable_conv=deeplab_kwargs.get("use_depthwise_separable_conv", False),
            branch_regularizer=dropblock if "aspp" in dropblock_positions else None,
            project_regularizer=dropblock if "project" in dropblock_positions else None,
        )

        if "decoder" in dropblock_positions:
            if not self.in_features[:-1]:
                raise ValueError(
                    f"dropblock_positions={list(dropblock_positions)}: 'decoder' needs a decoder "
                    f"stage, and in_features={list(self.in_features)} has only the ASPP's feature"
                )
            self.dropblock_decoder = nn.ModuleDict()
            for feature in self.in_features[:-1]:
                fuse = self.decoder[feature]["fuse_conv"]
                num_convs = len(fuse) if isinstance(fuse, nn.Sequential) else 1
                self.dropblock_decoder[feature] = nn.ModuleList(
                    dropblock() for _ in range(num_convs)
                )

    @classmethod
    def from_config(cls, cfg: CfgNode, input_shape: Dict[str, ShapeSpec]) -> dict:
        validate_dropblock_config(cfg)
        if cfg.INPUT.CROP.ENABLED and cfg.INPUT.CROP.TYPE != "absolute":
            raise ValueError(
                f"INPUT.CROP.TYPE={cfg.INPUT.CROP.TYPE!r}: the DeepLab head sizes its ASPP "
                "pooling from the crop and needs 'absolute' crops"
            )
        head = cfg.MODEL.SEM_SEG_HEAD
        missing = [f for f in head.IN_FEATURES if f not in input_shape]
        if missing:
            raise ValueError(
                f"MODEL.SEM_SEG_HEAD.IN_FEATURES={list(head.IN_FEATURES)}: the backbone has no "
                f"output {missing[0]!r} (it has {sorted(input_shape)})"
            )
        if len(head.PROJECT_CHANNELS) != len(head.IN_FEATURES) - 1:
            raise ValueError(
                f"MODEL.SEM_SEG_HEAD.PROJECT_CHANNELS={list(head.PROJECT_CHANNELS)}: expected "
                f"{len(head.IN_FEATURES) - 1} value(s), one per low-level feature of "
                f"MODEL.SEM_SEG_HEAD.IN_FEATURES={list(head.IN_FEATURES)}"
            )
        check_channels(
            head.NORM,
            {
                "MODEL.SEM_SEG_HEAD.PROJECT_CHANNELS": list(head.PROJECT_CHANNELS),
                "MODEL.SEM_SEG_HEAD.CONVS_DIM": head.CONVS_DIM,
                "MODEL.SEM_SEG_HEAD.ASPP_CHANNELS": head.ASPP_CHANNELS,
            },
        )
        _check_head_values(
            {"common_stride": "MODEL.SEM_SEG_HEAD.COMMON_STRIDE", "in_features": "MODEL.SEM_SEG_HEAD.IN_FEATURES",
             "aspp_dilations": "MODEL.SEM_SEG_HEAD.ASPP_DILATIONS", "aspp_dropout": "MODEL.SEM_SEG_HEAD.ASPP_DROPOUT",
             "loss_type": "MODEL.SEM_SEG_HEAD.LOSS_TYPE", "train_size": "INPUT.CROP.SIZE"},
            [input_shape[f].stride for f in head.IN_FEATURES], common_stride=head.COMMON_STRIDE,
            aspp_dilations=head.ASPP_DILATIONS, aspp_dropout=head.ASPP_DROPOUT, loss_type=head.LOSS_TYPE,
            train_size=cfg.INPUT.CROP.SIZE if cfg.INPUT.CROP.ENABLED else None)
        db = cfg.MODEL.DROPBLOCK
        if db.SEM_SEG_HEAD.ENABLED and "decoder" in db.SEM_SEG_HEAD.POSITIONS and len(head.IN_FEATURES) < 2:
            raise ValueError(
                f"MODEL.DROPBLOCK.SEM_SEG_HEAD.POSITIONS={list(db.SEM_SEG_HEAD.POSITIONS)}: 'decoder' needs "
                f"a decoder stage, and MODEL.SEM_SEG_HEAD.IN_FEATURES={list(head.IN_FEATURES)} has only "
                "the ASPP's feature"
            )
        ret = super().from_config(cfg, input_shape)
        if db.SEM_SEG_HEAD.ENABLED:
            ret["dropblock"] = regularizer_factory(cfg)
            ret["dropblock_positions"] = list(db.SEM_SEG_HEAD.POSITIONS)
        return ret

    def losses(self, predictions: torch.Tensor, targets: torch.Tensor) -> Dict[str, torch.Tensor]:
        """The stock loss on the logits upsampled by common_stride and cropped to the targets'
        (N, H, W), as inference crops them to the image (sem_seg_postprocess): the stock head
        compared the upsampled logits as they were, so a batch whose H or W is not a multiple
        of common_stride (an image smaller than INPUT.CROP.SIZE, no crop) failed at its
        first step with a size mismatch. The same loss wherever the sizes are multiples."""
        height, width = targets.shape[-2:]
        logits = F.interpolate(predictions, scale_factor=self.common_stride, mode="bilinear", align_corners=False)
        return {"loss_sem_seg": self.loss(logits[..., :height, :width], targets) * self.loss_weight}

    def _fuse(self, feature: str, x: torch.Tensor) -> torch.Tensor:
        fuse = self.decoder[feature]["fuse_conv"]
        decoder_regularizers = self._modules.get("dropblock_decoder")
        if decoder_regularizers is None:
            return fuse(x)
        regularizers = decoder_regularizers[feature]
        convs: List[nn.Module] = list(fuse) if isinstance(fuse, nn.Sequential) else [fuse]
        for conv, regularizer in zip(convs, regularizers):
            x = conv_relu_then_regularize(conv, regularizer, x)
        return x

    def layers(self, features: Dict[str, torch.Tensor]) -> torch.Tensor:
        """Decoder from the coarsest feature (ASPP) up to the finest; returns logits
        (N, num_classes, H/common_stride, W/common_stride), or the decoder feature when the
        head has no predictor."""
        y = None
        for feature in reversed(self.in_features):
            stage = self.decoder[feature]
            x = stage["project_conv"](features[feature])
            if stage["fuse_conv"] is None:  # the ASPP stage, always first
                y = x
                continue
            y = F.interpolate(y, size=x.shape[-2:], mode="bilinear", align_corners=False)
            y = self._fuse(feature, torch.cat([x, y], dim=1))
        if self.decoder_only:
            return y
        return self.predictor(y)
