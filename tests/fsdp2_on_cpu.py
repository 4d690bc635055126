"""`examples/pretrain.py` under FSDP2 on CPU processes (gloo), for the tests.

accelerate enables FSDP only on GPU-like devices (`AcceleratorState` turns a CPU launch into MULTI_CPU and
ignores `ACCELERATE_USE_FSDP`), while torch's `fully_shard` itself runs on CPU. This launcher builds the FSDP
plugin from the environment that `accelerate launch --config_file examples/configs/fsdp2.yaml` set (the
shipped config) and switches the state to FSDP after accelerate's device selection; everything else —
`fully_shard`, the sharded optimizer, `get_state_dict`, `save_state`/`load_state` — is accelerate's and
torch's real code on real gloo collectives.

    ACCELERATE_USE_CPU=1 accelerate launch --config_file examples/configs/fsdp2.yaml --num_machines 1 \
        --num_processes 2 --mixed_precision no tests/fsdp2_on_cpu.py [--script finetune_classification] ...
"""

import runpy
import sys
from pathlib import Path

import accelerate
from accelerate.state import PartialState
from accelerate.utils import DistributedType, FullyShardedDataParallelPlugin

import vidla_hf.training.classification
import vidla_hf.training.loop


class CpuFsdp2Accelerator(accelerate.Accelerator):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        assert self.state.distributed_type == DistributedType.MULTI_CPU, self.state.distributed_type
        plugin = FullyShardedDataParallelPlugin()  # from the FSDP_* variables the config file set
        assert plugin.fsdp_version == 2, plugin.fsdp_version
        self.state.fsdp_plugin = plugin
        # Where accelerate itself sets FSDP (on GPUs), both shared states hold it (`AcceleratorState` copies the
        # process state's type whenever it is instantiated again).
        self.state.distributed_type = PartialState._shared_state["distributed_type"] = DistributedType.FSDP


def main() -> None:
    vidla_hf.training.loop.Accelerator = CpuFsdp2Accelerator
    vidla_hf.training.classification.Accelerator = CpuFsdp2Accelerator
    # The script to run: examples/<name>.py given as `--script name` first, else examples/pretrain.py.
    script = "pretrain"
    if sys.argv[1:2] == ["--script"]:
        script = sys.argv[2]
        del sys.argv[1:3]
    sys.argv[0] = str(Path(__file__).resolve().parents[1] / "examples" / f"{script}.py")
    runpy.run_path(sys.argv[0], run_name="__main__")


if __name__ == "__main__":  # pytest's --doctest-modules imports this file: nothing may run then
    main()
