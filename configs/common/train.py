"""What detectron2's LazyConfig training loop reads under `train` (as detectron2's own
configs/common/train.py), plus the DropBlock keep_prob ramp."""
from detectron2.config import LazyCall as L

from dropblock_det.engine import DropBlockScheduleHook

train = dict(
    output_dir="./output",
    init_checkpoint="",
    max_iter=90000,
    amp=dict(enabled=False),  # AMPTrainer (needs CUDA)
    ddp=dict(broadcast_buffers=False, find_unused_parameters=False, fp16_compression=False),
    checkpointer=dict(period=5000, max_to_keep=100),
    eval_period=5000,
    log_period=20,
    device="cuda",
    seed=-1,  # < 0: a random seed per run
    # keep_prob ramps linearly from 1.0 at start_iter to every regularizer's target at
    # end_iter (None: max_iter, the paper's schedule); None here keeps the targets throughout.
    dropblock_schedule=L(DropBlockScheduleHook)(start_iter=0, end_iter=None),
)
