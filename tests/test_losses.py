"""The objective against eq. 3 written out, and two real processes (gloo) against one process, both for
`VidLALoss` and for `VidLAModel.forward(return_loss=True)` (one `info_nce`, gathering inside the loss)."""

import math
import os

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
import torch.nn.functional as F
from conftest import randomize_, tiny_config
from torch import nn

from vidla_hf import VidLAModel
from vidla_hf.modeling.modeling_vidla import gather_with_grad as modeling_gather_with_grad
from vidla_hf.modeling.modeling_vidla import info_nce as modeling_info_nce
from vidla_hf.training import VidLALoss, gather_with_grad, info_nce


def eq3_by_hand(v, c, s, scale):
    """Eq. 3 with explicit sums: (1/B) Σ_i L_vs^i + (1/B) Σ_i L_vc^i."""
    total = 0.0
    batch = v.shape[0]
    for t in (s, c):
        for i in range(batch):
            v_to_t = [math.exp(scale * float(v[i] @ t[j])) for j in range(batch)]
            t_to_v = [math.exp(scale * float(t[i] @ v[j])) for j in range(batch)]
            total += (-math.log(v_to_t[i] / sum(v_to_t)) - math.log(t_to_v[i] / sum(t_to_v))) / batch
    return total


def test_single_process_loss_is_equation_3():
    torch.manual_seed(0)
    v, c, s = (F.normalize(torch.randn(6, 5, dtype=torch.float64), dim=-1) for _ in range(3))
    total, parts = VidLALoss()(v, c, s, torch.tensor(7.0, dtype=torch.float64))
    assert total.item() == pytest.approx(eq3_by_hand(v, c, s, 7.0), rel=1e-9)
    assert (parts["caption"] + parts["subtitle"]).item() == pytest.approx(total.item())


def test_a_text_count_that_does_not_match_the_videos_is_refused():
    v = F.normalize(torch.randn(4, 8), dim=-1)
    with pytest.raises(ValueError, match="3 captions"):
        VidLALoss()(v, v[:3], v, torch.tensor(10.0))
    with pytest.raises(ValueError, match="as many texts as videos"):
        info_nce(v, v[:2], torch.tensor(10.0))


def test_training_reexports_the_one_definition_in_the_modeling_file():
    assert info_nce is modeling_info_nce and gather_with_grad is modeling_gather_with_grad
    t = torch.randn(3, 4)
    assert gather_with_grad(t) is t  # not distributed: the identity


class Towers(nn.Module):
    """Three small encoders standing in for the video and text towers."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.video, self.caption, self.subtitle = nn.Linear(10, 6), nn.Linear(7, 6), nn.Linear(7, 6)
        self.logit_scale = nn.Parameter(torch.tensor(math.log(10.0)))

    def forward(self, x, c, s):
        return (
            F.normalize(self.video(x), dim=-1),
            F.normalize(self.caption(c), dim=-1),
            F.normalize(self.subtitle(s), dim=-1),
            self.logit_scale.exp(),
        )


def batch(n=8):
    generator = torch.Generator().manual_seed(1)
    return (
        torch.randn(n, 10, generator=generator),
        torch.randn(n, 7, generator=generator),
        torch.randn(n, 7, generator=generator),
    )


def towers_loss(model, x, c, s):
    return VidLALoss()(*model(x, c, s))[0]


def towers_local_loss(model, x, c, s):
    return VidLALoss(local_loss=True)(*model(x, c, s))[0]


def tiny_vidla():
    return randomize_(VidLAModel(tiny_config())).train()  # no dropout, no masking: deterministic


def vidla_batch(n=4):
    generator = torch.Generator().manual_seed(2)
    input_ids = torch.randint(3, 99, (n, 7), generator=generator)
    input_ids[:, 0], input_ids[:, -1] = 0, 2  # bos, eos of the tiny text config
    return torch.randn(n, 2, 3, 8, 8, generator=generator), input_ids


def vidla_forward_loss(model, pixel_values_videos, input_ids):
    return model(pixel_values_videos=pixel_values_videos, input_ids=input_ids, return_loss=True).loss


# name: (model, whole batch, loss of a model on a batch)
SETUPS = {
    "VidLALoss": (Towers, batch, towers_loss),
    "VidLAModel.forward": (tiny_vidla, vidla_batch, vidla_forward_loss),
    # open_clip's local loss: each process its own rows; the losses differ by process, the gradients do not
    "VidLALoss(local_loss=True)": (Towers, batch, towers_local_loss),
}
LOCAL = {"VidLALoss(local_loss=True)"}


def _worker(rank, world_size, init_file, out_dir):
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world_size)
    results = {}
    for name, (build, whole_batch, compute_loss) in SETUPS.items():
        model = nn.parallel.DistributedDataParallel(build())
        inputs = whole_batch()
        share = inputs[0].shape[0] // world_size
        loss = compute_loss(model, *(t[rank * share : (rank + 1) * share] for t in inputs))
        loss.backward()
        results[name] = {
            "loss": loss.detach(),
            "grads": {n: p.grad for n, p in model.module.named_parameters()},
        }
    torch.save(results, os.path.join(out_dir, f"rank{rank}.pt"))
    dist.destroy_process_group()


def test_two_processes_equal_one_process_with_the_whole_batch(tmp_path):
    """Each process holds half the batch; the loss (gathered inside `info_nce`) and, after DDP averages them,
    the gradients equal those of one process holding the whole batch (the reference: the full loss). With the
    local loss, the mean of the processes' losses equals it."""
    expected = {}
    for name, (build, whole_batch, compute_loss) in SETUPS.items():
        model = build()
        loss = (towers_loss if name in LOCAL else compute_loss)(model, *whole_batch())
        loss.backward()
        expected[name] = {"loss": loss.detach(), "grads": {n: p.grad for n, p in model.named_parameters()}}

    mp.spawn(_worker, args=(2, str(tmp_path / "init"), str(tmp_path)), nprocs=2, join=True)
    results = [torch.load(tmp_path / f"rank{rank}.pt") for rank in range(2)]
    for name in LOCAL:
        losses = [result[name]["loss"] for result in results]
        assert not torch.allclose(losses[0], losses[1]), "each process's own rows"
        torch.testing.assert_close(sum(losses) / 2, expected[name]["loss"], msg=name)
    for result in results:
        for name, reference in expected.items():
            if name not in LOCAL:
                torch.testing.assert_close(result[name]["loss"], reference["loss"], msg=name)
            assert result[name]["grads"].keys() == reference["grads"].keys()
            for param, grad in reference["grads"].items():
                torch.testing.assert_close(result[name]["grads"][param], grad, msg=f"{name}: {param}")
