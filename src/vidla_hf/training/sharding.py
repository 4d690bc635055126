"""What the training loop does differently under FSDP2 (`accelerate launch --config_file
examples/configs/fsdp2.yaml`): torch's `fully_shard` splits every parameter across processes, so

- it refuses 0-d parameters: `logit_scale` (CLIP's, a scalar in every checkpoint) trains as shape `(1,)` and
  is saved back as a scalar (`make_shardable`, `unsharded_model`);
- the weights that belong to no encoder layer (embeddings, projections, final norms) are gathered by the
  prepared module's forward, so the evaluation goes through that module (`evaluation_model`);
- reading a whole parameter (the temperature for the logs, the finite-weights check) is a collective that
  every process joins (`full_tensor`);
- the final model is gathered from all processes (`accelerator.get_state_dict`) into a plain model that the
  main process saves, so the checkpoint is the same as a DDP run's.

Under DDP or one process every function here is the identity.
"""

import torch
from accelerate import Accelerator
from accelerate.utils import DistributedType
from torch import nn


def is_sharded(accelerator: Accelerator) -> bool:
    return accelerator.distributed_type == DistributedType.FSDP


def check_sharding_support(accelerator: Accelerator, lora_rank: int) -> None:
    """Raises before any model is built when the launch config asks for what training cannot do sharded."""
    if not is_sharded(accelerator):
        return
    if not accelerator.is_fsdp2:
        raise ValueError(
            "FSDP1 (`fsdp_version: 1`) is not supported; use FSDP2 (`fsdp_version: 2`, as in "
            "examples/configs/fsdp2.yaml)."
        )
    if lora_rank:
        raise ValueError(
            "`--lora_rank` cannot be combined with FSDP2 (merging the adapters needs the whole weights); "
            "use DDP (examples/configs/multi_node_ddp.yaml) or --freeze_spatial."
        )


def make_shardable(model: nn.Module) -> list[str]:
    """Turns each 0-d parameter of `model` (`logit_scale`) into a `(1,)` one with the same value and
    `requires_grad`, in place; returns their names. `fully_shard` cannot split a 0-d tensor.

    Example:

    ```python
    >>> from vidla_hf import VidLAConfig, VidLAModel
    >>> model = VidLAModel(VidLAConfig.from_preset("vidla-tiny"))
    >>> make_shardable(model), tuple(model.logit_scale.shape)
    (['logit_scale'], (1,))

    ```"""
    names = [name for name, param in model.named_parameters() if param.dim() == 0]
    for name in names:
        owner_name, _, attribute = name.rpartition(".")
        owner = model.get_submodule(owner_name)
        old = getattr(owner, attribute)
        setattr(owner, attribute, nn.Parameter(old.detach().reshape(1), requires_grad=old.requires_grad))
    return names


def full_tensor(tensor: torch.Tensor) -> torch.Tensor:
    """The whole tensor of a sharded parameter (a collective: every process must call it), else `tensor`."""
    return tensor.full_tensor() if hasattr(tensor, "full_tensor") else tensor


def evaluation_model(accelerator: Accelerator, module: nn.Module, model: nn.Module) -> nn.Module:
    """What the evaluation calls `get_video_features`/`get_text_features` on: `model` (the prepared `module`'s
    `model`), or under FSDP2 `module` itself, whose two methods are then registered as forward methods, so that
    each call gathers the weights that belong to no encoder layer (embeddings, projections, final norms) as
    `module.forward` does (every process must evaluate)."""
    if not is_sharded(accelerator):
        return model
    from torch.distributed.fsdp import register_fsdp_forward_method

    for name in ("get_video_features", "get_text_features"):
        register_fsdp_forward_method(module, name)
    return module


def unsharded_model(accelerator: Accelerator, module: nn.Module, model: nn.Module) -> nn.Module | None:
    """The trained `model` (the `model` attribute of the prepared `module`) as a plain model with the
    checkpoint's shapes, for saving.

    Under FSDP2 every process must call it (the weights are gathered from all of them); the main process gets a
    new unsharded copy, the others `None`. Otherwise it returns `model` itself.
    """
    if not is_sharded(accelerator):
        return model
    state_dict = accelerator.get_state_dict(module)  # full tensors, on the CPU
    if not accelerator.is_main_process:
        return None
    plain_class = next(cls for cls in type(model).__mro__ if not cls.__name__.startswith("FSDP"))
    plain = plain_class(model.config)
    weights = {
        name.removeprefix("model."): tensor
        for name, tensor in state_dict.items()
        if name.startswith("model.")
    }
    shapes = {name: tensor.shape for name, tensor in plain.state_dict().items()}
    weights = {name: tensor.reshape(shapes[name]) for name, tensor in weights.items()}
    plain.load_state_dict(weights)
    return plain


__all__ = [
    "check_sharding_support",
    "full_tensor",
    "is_sharded",
    "make_shardable",
    "unsharded_model",
]
