"""Two CPU processes (torch.distributed, gloo) train a DropBlock RetinaNet wrapped in
DistributedDataParallel: the keep_prob schedule is the same on both ranks at every step,
the DropBlock masks differ between ranks, and gradients (hence parameters) are synchronised.

The processes are started here with subprocess: detectron2 v0.6's `launch` asserts CUDA
(current main's falls back to gloo on CPU). Each rank seeds itself the way tools/train_net.py
does, through detectron2's `default_setup` (seed_all_rng(SEED + rank)); see
distributed_worker.py for what each rank records.
"""
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

WORKER = Path(__file__).resolve().parent / "distributed_worker.py"
WORLD_SIZE = 2


@pytest.fixture(scope="module")
def ranks(module_tmp_path_factory):
    """What every rank recorded: [rank0 dict, rank1 dict]."""
    out = module_tmp_path_factory.mktemp("ddp")
    init_file = out / "init"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}
    procs = [
        subprocess.Popen(
            [sys.executable, str(WORKER), str(rank), str(WORLD_SIZE), str(init_file), str(out)],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env,
        )
        for rank in range(WORLD_SIZE)
    ]
    logs = []
    try:
        for proc in procs:
            logs.append(proc.communicate(timeout=180)[0].decode(errors="replace"))
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
    # Every failing rank's log: a rank that aborts (gloo's "terminate called ...") is often
    # the echo of the other's error, which the first rank's log alone did not show.
    failed = [f"rank {rank} exited {proc.returncode}:\n{log[-3000:]}"
              for rank, (proc, log) in enumerate(zip(procs, logs)) if proc.returncode != 0]
    assert not failed, "\n\n".join(failed)
    return [torch.load(out / f"rank{r}.pt", weights_only=False) for r in range(WORLD_SIZE)]


def test_schedule_is_the_same_on_every_rank_at_every_step(ranks):
    rank0, rank1 = (r["records"] for r in ranks)
    assert [s["iteration"] for s in rank0] == [s["iteration"] for s in rank1] == [0, 1, 2]
    for step0, step1 in zip(rank0, rank1):
        assert step0["scalar_keep_prob"] == step1["scalar_keep_prob"]
        assert step0["keep_probs"] == step1["keep_probs"]
    # It ramps 1.0 -> 0.8 over the steps, on every regularizer of res4/res5 and the head.
    assert [s["scalar_keep_prob"] for s in rank0] == pytest.approx([1.0, 0.9, 0.8])
    names = list(rank0[-1]["keep_probs"])
    assert any(".res4." in n for n in names) and any(".res5." in n for n in names)
    assert any("head." in n for n in names)
    assert all(v == pytest.approx(0.8) for v in rank0[-1]["keep_probs"].values())


def test_dropblock_masks_differ_between_ranks(ranks):
    rank0, rank1 = (r["records"] for r in ranks)
    for step0, step1 in zip(rank0[1:], rank1[1:]):  # step 0 runs at keep_prob 1.0
        # Same input to that regularizer on both ranks, so only the mask can differ.
        assert step0["mask_input_difference"] == 0.0
        assert not step0["mask"].all() and not step1["mask"].all()  # something was dropped
        assert not torch.equal(step0["mask"], step1["mask"])


def test_ranks_need_the_rank_offset_in_the_seed(ranks):
    # With the same seed on both ranks the masks would be identical (what the rank offset
    # in detectron2's default_setup prevents); with SEED + rank they differ.
    rank0, rank1 = ranks
    assert not rank0["same_seed_mask"].all()
    assert torch.equal(rank0["same_seed_mask"], rank1["same_seed_mask"])
    assert not torch.equal(rank0["rank_seed_mask"], rank1["rank_seed_mask"])


def test_gradients_and_parameters_are_synchronised(ranks):
    for rank in ranks:
        for step in rank["records"]:
            assert step["num_grads"] > 0
            # DDP all-reduces the gradients: identical to the last bit on CPU.
            assert step["grad_difference"] == 0.0
            assert step["param_difference"] == 0.0
