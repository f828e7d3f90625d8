"""One rank of the two-process CPU (gloo) training run of tests/reliability/test_distributed.py.

    python distributed_worker.py RANK WORLD_SIZE INIT_FILE OUT_DIR

Each rank seeds itself with detectron2's `default_setup` (SEED + rank), builds the tiny
plugin RetinaNet with DropBlock at res4/res5 and in the head, wraps it with detectron2's
`create_ddp_model` (gloo, no device_ids on CPU), and trains a few iterations with
`SimpleTrainer` and `DropBlockScheduleHook` on the SAME batch on every rank, so that the
DropBlock masks are the only difference between the ranks. After every step it records
into OUT_DIR/rank{RANK}.pt:

* the hook's scalar "dropblock/keep_prob" and every regularizer's keep_prob;
* the keep mask of the first regularizer of res4 (its input is identical on both ranks:
  same weights, same data, nothing random before it);
* the largest difference to rank 0 of every gradient and every parameter.

Then, as a control, it re-seeds with the same seed on every rank and records that
regularizer's mask on a fixed input (identical seeds give identical masks).
"""
import argparse
import os
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))  # tests/: conftest's helpers
sys.path.insert(0, str(HERE))

import torch  # noqa: E402
import torch.distributed as dist  # noqa: E402

STEPS = 3
SEED = 1234


def _max_difference_to_rank0(tensors) -> float:
    """max |t - t on rank 0| over all tensors (every rank gets the same answer)."""
    worst = torch.zeros((), dtype=torch.float64)
    for t in tensors:
        reference = t.detach().clone()
        dist.broadcast(reference, src=0)
        worst = torch.maximum(worst, (t.detach() - reference).abs().max().double())
    dist.all_reduce(worst, op=dist.ReduceOp.MAX)
    return float(worst)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("rank", type=int)
    parser.add_argument("world_size", type=int)
    parser.add_argument("init_file")
    parser.add_argument("out_dir")
    args = parser.parse_args()
    torch.set_num_threads(1)
    dist.init_process_group(
        "gloo", init_method=f"file://{args.init_file}", rank=args.rank, world_size=args.world_size
    )

    from detectron2.engine import HookBase, SimpleTrainer, default_setup
    from detectron2.engine.defaults import create_ddp_model
    from detectron2.modeling import build_model
    from detectron2.utils.env import seed_all_rng

    from conftest import detection_batch, small_retinanet_cfg
    from dropblock_det.engine import DropBlockScheduleHook
    from dropblock_det.layers import iter_regularizers

    cfg = small_retinanet_cfg("Base-RetinaNet-Scratch.yaml")
    cfg.MODEL.FPN.OUT_CHANNELS = 64  # GN: >= 2 values per group on the 1x1 P7 of 64 px
    cfg.MODEL.RETINANET.NORM = "GN"
    db = cfg.MODEL.DROPBLOCK
    db.KEEP_PROB = 0.8
    db.BLOCK_SIZE = 3
    db.RESNET.ENABLED = True
    db.RESNET.STAGES = ["res4", "res5"]
    db.HEAD.ENABLED = True
    db.SCHEDULE.START_ITER = 0
    db.SCHEDULE.END_ITER = STEPS - 1  # keep_prob 1.0, 0.9, 0.8
    cfg.SEED = SEED
    cfg.SOLVER.MAX_ITER = STEPS
    cfg.OUTPUT_DIR = os.path.join(args.out_dir, "output")
    cfg.freeze()
    # What tools/train_net.py does on every rank: seeds torch/numpy/random with SEED + rank.
    default_setup(cfg, argparse.Namespace(config_file="", eval_only=False))

    model = build_model(cfg)
    model.train()
    # DefaultTrainer's call, with device_ids=None: on CPU there is no device to pin.
    ddp_model = create_ddp_model(model, device_ids=None, broadcast_buffers=False)
    assert isinstance(ddp_model, torch.nn.parallel.DistributedDataParallel)
    first_res4 = model.backbone.bottom_up.res4[0].dropblock_conv1
    captured = {}

    def capture_mask(module, inputs, output):
        # The input is conv1's pre-ReLU map (the ReLU runs inside DropBlock): only a positive
        # unit zeroed in the output was dropped.
        captured["mask"] = ((output != 0) | (inputs[0] <= 0)).detach().clone()
        captured["input"] = inputs[0].detach().clone()

    first_res4.register_forward_hook(capture_mask)

    batch = detection_batch(num_images=1, size=(3, 64, 64), seed=0)
    data = iter([batch] * STEPS)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    records = []

    class Record(HookBase):
        def after_step(self):
            grads = [p.grad for p in model.parameters() if p.grad is not None]
            records.append({
                "iteration": self.trainer.iter,
                "scalar_keep_prob": self.trainer.storage.history("dropblock/keep_prob").latest(),
                "keep_probs": {name: r.keep_prob for name, r in iter_regularizers(model)},
                "mask": captured["mask"],
                "mask_input_difference": _max_difference_to_rank0([captured["input"]]),
                "num_grads": len(grads),
                "grad_difference": _max_difference_to_rank0(grads),
                "param_difference": _max_difference_to_rank0(list(model.parameters())),
            })

    trainer = SimpleTrainer(ddp_model, data, optimizer)
    trainer.register_hooks([DropBlockScheduleHook.from_config(cfg), Record()])
    trainer.train(0, STEPS)

    # Control: the same seed on every rank gives the same mask.
    first_res4.keep_prob = 0.8
    fixed = torch.ones(1, 8, 8, 8)
    seed_all_rng(SEED)
    same_seed_mask = first_res4(fixed) != 0
    seed_all_rng(SEED + args.rank)
    rank_seed_mask = first_res4(fixed) != 0
    torch.save(
        {"records": records, "same_seed_mask": same_seed_mask, "rank_seed_mask": rank_seed_mask},
        os.path.join(args.out_dir, f"rank{args.rank}.pt"),
    )
    dist.barrier()
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
