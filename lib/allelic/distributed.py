"""Where the computation runs: the device of this process, and several processes training one model under
``torchrun`` (DistributedDataParallel).

Nothing to call for users: :func:`allelic.train.finetune`, :func:`allelic.train.pretrain_mlm` and the command lines
built on them (``allelic pretrain``, ``allelic finetune``) run unchanged under

    torchrun --nproc_per_node 4 -m allelic.cli finetune --base DIR --train FILE.tsv --out DIR
    accelerate launch --multi_gpu --num_processes 4 -m allelic.cli pretrain --corpus DIR

which set ``RANK``, ``WORLD_SIZE`` and ``LOCAL_RANK`` (accelerate starts GPU processes through torchrun's launcher;
on CPUs it spreads processes only through mpirun, so CPU runs here use torchrun); the first training loop then joins
the process group (NCCL on GPUs, gloo on CPUs) and each process takes one GPU (``cuda:LOCAL_RANK``).

The batches: one permutation per epoch from ``random_state``, the same in every process (the role of torch's
``DistributedSampler``, but over the global batch, so that the split among processes never changes which examples
make up a step).

What holds across world sizes (tested with two gloo processes on a CPU):

* ``batch_size`` is the **global** micro-batch: every process draws the same batch order from ``random_state`` and
  takes its contiguous share of each micro-batch (:func:`share`), so the examples of an optimiser step, and the
  random MLM masks, are those of one process;
* the loss is the sum over the process's examples (or masked tokens) divided by the global count, times the world
  size: after DDP averages the gradients, each step's gradient is the one-process gradient of the same batch, and
  the logged loss is the global batch mean (one all-reduce of two numbers per micro-batch);
* rank 0 alone writes checkpoints, ``metrics.json``, model folders and progress; a checkpoint holds the unwrapped
  model and counts global steps and micro-batches, so a run resumes in any world size.

Dropout differs: each process draws dropout masks for its own rows, so with dropout on, runs with different world
sizes agree in distribution, not bit for bit (with dropout 0 they agree within float tolerance).
"""
from __future__ import annotations

import os


def resolve_device(device: str | None = "auto"):
    """``torch.device``: CUDA when available for ``"auto"`` (or None), else the named device. Under a launcher
    (``torchrun``) each process takes its own GPU: ``"auto"`` and ``"cuda"`` mean ``cuda:LOCAL_RANK``."""
    import torch

    if device in (None, "auto"):
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda" and world_size() > 1:
        return torch.device("cuda", local_rank())
    return torch.device(device)


def world_size() -> int:
    """Processes in the job: the process group's size once joined, else ``$WORLD_SIZE`` (1 without a launcher)."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        return dist.get_world_size()
    return int(os.environ.get("WORLD_SIZE", "1"))


def rank() -> int:
    """This process's rank (0 without a launcher)."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        return dist.get_rank()
    return int(os.environ.get("RANK", "0"))


def local_rank() -> int:
    """This process's rank on its machine (``$LOCAL_RANK``): the GPU it takes."""
    return int(os.environ.get("LOCAL_RANK", "0"))


def is_main() -> bool:
    """True in the process that writes files and prints (rank 0)."""
    return rank() == 0


def setup() -> bool:
    """Join the process group when a launcher started several processes (``$WORLD_SIZE`` > 1); idempotent.
    NCCL when CUDA is available (each process on ``cuda:LOCAL_RANK``), gloo otherwise. True when distributed."""
    import torch
    import torch.distributed as dist

    if int(os.environ.get("WORLD_SIZE", "1")) <= 1 or not dist.is_available():
        return dist.is_available() and dist.is_initialized()
    if not dist.is_initialized():
        cuda = torch.cuda.is_available()
        if cuda:
            torch.cuda.set_device(local_rank())
        dist.init_process_group(backend="nccl" if cuda else "gloo")
    return True


def active() -> bool:
    """True inside a process group of more than one process."""
    import torch.distributed as dist

    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def barrier() -> None:
    """Wait for every process (no-op in one process)."""
    import torch.distributed as dist

    if active():
        dist.barrier()


def share(n: int, rank_: int | None = None, world: int | None = None) -> slice:
    """The contiguous part of a micro-batch of ``n`` rows that process ``rank_`` of ``world`` takes: the first
    ``n % world`` processes take one row more (``numpy.array_split``'s rule); a process may get none."""
    r = rank() if rank_ is None else rank_
    w = world_size() if world is None else world
    if not 0 <= r < w:
        raise ValueError(f"rank {r} outside a world of {w} processes")
    base, extra = divmod(n, w)
    start = r * base + min(r, extra)
    return slice(start, start + base + (r < extra))


def all_sum(values):
    """The element-wise sum over processes of a 1-d float64 CPU tensor (returned as is in one process); NCCL reduces
    GPU tensors only, so there the values travel through this process's GPU."""
    import torch
    import torch.distributed as dist

    if not active():
        return values
    if dist.get_backend() == "nccl":
        on_gpu = values.to(torch.device("cuda", torch.cuda.current_device()))
        dist.all_reduce(on_gpu, op=dist.ReduceOp.SUM)
        return on_gpu.cpu()
    dist.all_reduce(values, op=dist.ReduceOp.SUM)
    return values


def wrap(model, device):
    """``model`` wrapped in DistributedDataParallel inside a process group (on ``device``), else ``model``."""
    if not active():
        return model
    from torch.nn.parallel import DistributedDataParallel

    ids = [device.index if device.index is not None else local_rank()] if device.type == "cuda" else None
    return DistributedDataParallel(model, device_ids=ids)


def broadcast_object(obj):
    """Rank 0's ``obj`` in every process (the object itself in one process)."""
    import torch.distributed as dist

    if not active():
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]
