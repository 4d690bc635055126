"""The objective against eq. 3 written out, and two real processes (gloo) against one process."""

import math
import os

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
import torch.nn.functional as F
from torch import nn

from vidla_hf.training import VidLALoss


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


def _worker(rank, world_size, init_file, out_dir):
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world_size)
    model = nn.parallel.DistributedDataParallel(Towers())
    x, c, s = batch()
    local = slice(rank * 4, (rank + 1) * 4)
    loss, _ = VidLALoss()(*model(x[local], c[local], s[local]))
    loss.backward()
    torch.save(
        {"loss": loss.detach(), "grads": {n: p.grad for n, p in model.module.named_parameters()}},
        os.path.join(out_dir, f"rank{rank}.pt"),
    )
    dist.destroy_process_group()


def test_two_processes_equal_one_process_with_the_whole_batch(tmp_path):
    model = Towers()
    loss, _ = VidLALoss()(*model(*batch()))
    loss.backward()
    expected = {n: p.grad for n, p in model.named_parameters()}

    mp.spawn(_worker, args=(2, str(tmp_path / "init"), str(tmp_path)), nprocs=2, join=True)
    for rank in range(2):
        result = torch.load(tmp_path / f"rank{rank}.pt")
        torch.testing.assert_close(result["loss"], loss.detach())
        for name, grad in expected.items():
            torch.testing.assert_close(result["grads"][name], grad, msg=name)
