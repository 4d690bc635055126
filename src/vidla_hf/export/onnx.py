"""ONNX export of VidLA's two towers, each its own graph ending in the L2-normalised projected embedding.

Each tower is traced with `torch.export.export(strict=False)` and translated by torch's dynamo ONNX exporter
(`torch.onnx.export(exported_program)`, the default ONNX opset of the installed torch; 20 for torch 2.14). Both
graphs are then run with onnxruntime against PyTorch before anything is written (`OnnxExportError` if they
differ by more than `VERIFY_ATOL`).

* `video_tower.onnx`: `pixel_values_videos` float32 `(batch, T, 3, S, S)` → `video_embeds` `(batch, D)`, equal
  to `F.normalize(model.get_video_features(pixel_values_videos).pooler_output, dim=-1)` (= `video_embeds` of
  `VidLAModel.forward`). T is fixed per export (`num_frames`), or any T with `dynamic_frames=True`.
* `text_tower.onnx`: `input_ids`, `attention_mask` int64 `(batch, sequence)`, sequence up to the text tower's
  context (77 for CLIP) → `text_embeds` `(batch, D)`, likewise normalised.

Dynamic frames: the model uses its temporal position table as it is when T equals the table's length, and
interpolates it otherwise; `torch.export` would bake that branch into the graph (a guard `T != table length`),
so a dynamic-frame graph is traced at a T different from the table's and keeps the interpolation for every T.
Linear interpolation to the table's own length is the identity (every sample lands on an entry, with weight
1), so at that T too the graph equals PyTorch (verified at both, and tested).
"""

import copy
import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..modeling import NoSuchFolderError, VidLAModel
from ..processing import VidLAProcessor, VidLAVideoProcessor, build_clip_tokenizer
from ..utils.folders import make_staging, swap_in
from .folders import METADATA_FILE, WRITTEN_BY, check_output_dir

VIDEO_FILE = "video_tower.onnx"
TEXT_FILE = "text_tower.onnx"
# Largest |ONNX - PyTorch| accepted on the normalised embeddings when the export verifies itself.
VERIFY_ATOL = 1e-4


class OnnxExportError(RuntimeError):
    """An exported graph does not reproduce PyTorch, or lost an axis that should be dynamic."""


@dataclass(frozen=True)
class OnnxExport:
    """The files `export_onnx` wrote."""

    folder: Path
    video_tower: Path
    text_tower: Path
    metadata: Path


class VideoTower(nn.Module):
    """`(B, T, 3, S, S)` normalised frames → `(B, D)` L2-normalised projected video embeddings."""

    def __init__(self, model: VidLAModel):
        super().__init__()
        self.model = model

    def forward(self, pixel_values_videos: torch.Tensor) -> torch.Tensor:
        video = self.model.get_video_features(pixel_values_videos=pixel_values_videos).pooler_output
        return F.normalize(video, dim=-1)


class TextTower(nn.Module):
    """`(B, L)` token ids and attention mask → `(B, D)` L2-normalised projected text embeddings."""

    def __init__(self, model: VidLAModel):
        super().__init__()
        self.model = model

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        text = self.model.get_text_features(input_ids=input_ids, attention_mask=attention_mask).pooler_output
        return F.normalize(text, dim=-1)


def _load(model_or_folder, processor):
    """The model and the processor to ship: the given one, else the folder's, else CLIP's tokenizer (None)."""
    if isinstance(model_or_folder, VidLAModel):
        return model_or_folder, processor
    if not isinstance(model_or_folder, (str, os.PathLike)):
        raise TypeError(
            f"`model_or_folder` must be a VidLAModel or a model folder, got {type(model_or_folder).__name__}."
        )
    folder = Path(os.path.expanduser(os.fspath(model_or_folder)))
    if not folder.is_dir():
        raise NoSuchFolderError(
            f"no such model folder: {folder.absolute()} (from {os.fspath(model_or_folder)!r}). export_onnx "
            "takes a local folder written by `save_pretrained` (for a Hub model, download it first, e.g. "
            "`huggingface_hub.snapshot_download(repo_id)`), or a VidLAModel.",
            str(folder.absolute()),
        )
    model = VidLAModel.from_pretrained(folder)
    if processor is None and (folder / "processor_config.json").is_file():
        processor = VidLAProcessor.from_pretrained(folder)
    return model, processor


def _check_model(model: VidLAModel) -> None:
    wrong = {(p.device.type, p.dtype) for p in model.parameters()} - {("cpu", torch.float32)}
    if wrong:
        device, dtype = sorted(wrong, key=str)[0]
        raise ValueError(
            f"export_onnx exports float32 graphs from a model on the CPU; this one has {dtype} parameters on "
            f"{device}: pass `model.float().cpu()` (or the model folder)."
        )


def _prepare_processor(processor, model: VidLAModel, num_frames: int) -> VidLAProcessor:
    """A copy of `processor` (default: CLIP's tokenizer and the model's image size) sampling `num_frames`, its
    texts cut at the text tower's context; refused if its frames or token ids cannot go into the graphs."""
    size = model.config.vision_config.image_size
    if processor is None:
        video_processor = VidLAVideoProcessor(
            num_frames=num_frames, size={"shortest_edge": size}, crop_size={"height": size, "width": size}
        )
        processor = VidLAProcessor(video_processor, build_clip_tokenizer())
    if not isinstance(processor, VidLAProcessor):
        raise TypeError(f"`processor` must be a VidLAProcessor, got {type(processor).__name__}.")
    processor = copy.deepcopy(processor)
    processor.video_processor.num_frames = num_frames
    context = model.config.text_config.max_position_embeddings
    processor.tokenizer.model_max_length = min(processor.tokenizer.model_max_length, context)
    vocab_size = model.config.text_config.vocab_size
    if len(processor.tokenizer) > vocab_size:
        raise ValueError(
            f"the processor's tokenizer has {len(processor.tokenizer)} tokens but the text tower embeds "
            f"{vocab_size}: its ids would fall outside the embedding table. Pass the model's own processor."
        )
    probe = processor(videos=[np.zeros((2, 8, 8, 3), np.uint8)], return_tensors="np")["pixel_values_videos"]
    if probe.shape[2:] != (3, size, size):
        raise ValueError(
            f"the processor makes {probe.shape[3]}x{probe.shape[4]} frames but the video tower takes {size}x{size}. "
            "Pass the model's own processor."
        )
    return processor


def _to_onnx(
    module: nn.Module, cases: list[dict], axes: dict[str, dict], output_name: str, path: Path
) -> None:
    """`torch.export` of `module` at `cases[0]`, then the dynamo ONNX exporter; saved to `path`. `axes` gives the
    dynamic `torch.export.Dim` of each input axis; the ONNX axis gets the Dim's name."""
    args = tuple(cases[0].values())
    exported = torch.export.export(
        module, args, dynamic_shapes=axes, strict=False, prefer_deferred_runtime_asserts_over_guards=True
    )
    program = torch.onnx.export(exported, dynamo=True, verbose=False)
    graph = program.model.graph
    graph.outputs[0].name = output_name
    renames = {}
    for value in graph.inputs:
        for axis, dim in axes[value.name].items():
            symbol = value.shape[axis]
            if isinstance(symbol, int):
                raise OnnxExportError(
                    f"the exporter fixed axis {axis} of `{value.name}` to {symbol}; it should be dynamic ({dim.__name__})."
                )
            renames[symbol.value] = dim.__name__
    program.rename_axes(renames)
    program.save(str(path))


def _max_abs_difference(session, module: nn.Module, inputs: dict[str, torch.Tensor]) -> float:
    with torch.no_grad():
        expected = module(**inputs).numpy()
    actual = session.run(None, {name: tensor.numpy() for name, tensor in inputs.items()})[0]
    if actual.shape != expected.shape:
        raise OnnxExportError(f"the ONNX graph returned shape {actual.shape}, PyTorch {expected.shape}.")
    return float(np.abs(actual - expected).max())


def _verify(path: Path, module: nn.Module, cases: list[dict[str, torch.Tensor]], tower: str) -> float:
    """Runs the saved graph with onnxruntime on each case; the largest difference from PyTorch."""
    import onnxruntime

    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    worst = max(_max_abs_difference(session, module, case) for case in cases)
    if not worst <= VERIFY_ATOL:
        raise OnnxExportError(
            f"the exported {tower} tower differs from PyTorch by {worst:.3g} (max abs) on random inputs, more "
            f"than {VERIFY_ATOL:g}; nothing was written."
        )
    return worst


def _graph_io(path: Path) -> dict:
    """Names, shapes (named axes as strings) and dtypes of a saved graph's inputs and outputs."""
    import onnx

    model = onnx.load(str(path), load_external_data=False)

    def describe(value) -> dict:
        tensor = value.type.tensor_type
        shape = [dim.dim_param or dim.dim_value for dim in tensor.shape.dim]
        dtype = np.dtype(onnx.helper.tensor_dtype_to_np_dtype(tensor.elem_type)).name
        return {"name": value.name, "shape": shape, "dtype": dtype}

    opset = next(entry.version for entry in model.opset_import if entry.domain in ("", "ai.onnx"))
    return {
        "file": path.name,
        "opset": opset,
        "inputs": [describe(value) for value in model.graph.input],
        "outputs": [describe(value) for value in model.graph.output],
    }


def _text_cases(config, generator: torch.Generator) -> list[dict[str, torch.Tensor]]:
    """Random token ids ending in [EOS] (the token the text tower pools), one row padded; two lengths."""
    context = config.max_position_embeddings
    cases = []
    for batch_size, length in ((2, min(7, context)), (3, min(4, context))):
        input_ids = torch.randint(0, config.vocab_size, (batch_size, length), generator=generator)
        attention_mask = torch.ones(batch_size, length, dtype=torch.long)
        input_ids[:, -1] = config.eos_token_id
        input_ids[0, length // 2] = config.eos_token_id
        attention_mask[0, length // 2 + 1 :] = 0
        cases.append({"input_ids": input_ids, "attention_mask": attention_mask})
    return cases


def export_onnx(
    model_or_folder,
    output_dir: str | os.PathLike,
    num_frames: int | None = None,
    *,
    dynamic_frames: bool = False,
    processor: VidLAProcessor | None = None,
    overwrite: bool = False,
) -> OnnxExport:
    """Exports the video and text towers to `video_tower.onnx` and `text_tower.onnx` in `output_dir`, with the
    processor (for `OnnxEmbedder`) and `onnx_export.json` (inputs, outputs, shapes, opset, frame count,
    `logit_scale`, the verified differences, the files written).

    `model_or_folder`: a `VidLAModel` (float32, on the CPU; left as it was) or a folder written by
    `save_pretrained` (its processor is used when it has one). `num_frames`: the frames per video (default: the
    config's); the video graph takes exactly that many, or any number with `dynamic_frames=True` (the processor
    then still samples `num_frames` unless told otherwise). The batch axis is always dynamic, and so is the text
    length, up to the text tower's context. `processor` defaults to the folder's, else CLIP's tokenizer with
    the model's image size. Both graphs are checked with onnxruntime against PyTorch on random inputs before
    anything is written (`OnnxExportError` beyond `VERIFY_ATOL`).

    `output_dir` must be new or empty, or, with `overwrite=True`, an earlier export that holds nothing else; any
    other folder is refused (`ValueError`). The files are written in a hidden sibling folder and moved in by
    renames, so a failure leaves `output_dir` as it was.

    Example (a tiny random model):

    ```python
    >>> import tempfile
    >>> from vidla_hf import VidLAConfig, VidLAModel
    >>> from vidla_hf.export import export_onnx
    >>> model = VidLAModel(VidLAConfig.from_preset("vidla-tiny", num_frames=2))
    >>> export = export_onnx(model, tempfile.mkdtemp() + "/onnx")
    >>> export.video_tower.name, export.text_tower.name
    ('video_tower.onnx', 'text_tower.onnx')
    >>> import json
    >>> info = json.loads(export.metadata.read_text())
    >>> info["video_tower"]["inputs"][0]
    {'name': 'pixel_values_videos', 'shape': ['batch', 2, 3, 64, 64], 'dtype': 'float32'}
    >>> [(value["name"], value["shape"]) for value in info["text_tower"]["inputs"]]
    [('input_ids', ['batch', 'sequence']), ('attention_mask', ['batch', 'sequence'])]

    ```
    """
    import onnxruntime  # noqa: F401  (fail before any work when the `export` extra is missing)

    model, processor = _load(model_or_folder, processor)
    _check_model(model)
    vision, text = model.config.vision_config, model.config.text_config
    num_frames = vision.num_frames if num_frames is None else num_frames
    if isinstance(num_frames, bool) or not isinstance(num_frames, int) or num_frames < 1:
        raise ValueError(f"`num_frames` must be a positive int, got {num_frames!r}.")
    if not isinstance(dynamic_frames, bool):
        raise TypeError(f"`dynamic_frames` must be True or False, got {dynamic_frames!r}.")
    target = Path(os.path.expanduser(os.fspath(output_dir)))
    check_output_dir(target, overwrite)
    processor = _prepare_processor(processor, model, num_frames)

    table_length = model.vision_model.embeddings.temporal_embedding.shape[0]
    # A dynamic graph is traced where the table is interpolated (module docstring), at T >= 2 (torch.export
    # specialises sizes 0 and 1).
    trace_frames = table_length + 1 if dynamic_frames else num_frames
    generator = torch.Generator().manual_seed(0)
    size = vision.image_size
    video_cases = [
        {"pixel_values_videos": torch.randn(batch, frames, 3, size, size, generator=generator)}
        for batch, frames in ((2, trace_frames), (1, trace_frames))
    ]
    if dynamic_frames:
        video_cases += [
            {"pixel_values_videos": torch.randn(2, frames, 3, size, size, generator=generator)}
            for frames in sorted({num_frames, table_length, 1})
        ]
    text_cases = _text_cases(text, generator)

    batch = torch.export.Dim("batch", min=1)
    video_axes = {0: batch, 1: torch.export.Dim("frames", min=1)} if dynamic_frames else {0: batch}
    sequence = torch.export.Dim("sequence", min=1, max=text.max_position_embeddings)

    was_training = model.training
    video_tower, text_tower = VideoTower(model).eval(), TextTower(model).eval()
    staging = make_staging(target)
    try:
        _to_onnx(
            video_tower,
            video_cases,
            {"pixel_values_videos": video_axes},
            "video_embeds",
            staging / VIDEO_FILE,
        )
        differences = {"video_tower": _verify(staging / VIDEO_FILE, video_tower, video_cases, "video")}
        text_axes = {"input_ids": {0: batch, 1: sequence}, "attention_mask": {0: batch, 1: sequence}}
        _to_onnx(text_tower, text_cases, text_axes, "text_embeds", staging / TEXT_FILE)
        differences["text_tower"] = _verify(staging / TEXT_FILE, text_tower, text_cases, "text")
        processor.save_pretrained(staging)
        files = sorted(p.relative_to(staging).as_posix() for p in staging.rglob("*") if p.is_file())
        metadata = {
            "written_by": WRITTEN_BY,
            "exporter": "torch.export.export(strict=False), torch.onnx.export(dynamo=True)",
            "torch_version": torch.__version__,
            "video_tower": _graph_io(staging / VIDEO_FILE),
            "text_tower": _graph_io(staging / TEXT_FILE),
            "normalized": True,
            "num_frames": num_frames,
            "dynamic_frames": dynamic_frames,
            "image_size": size,
            "max_text_length": text.max_position_embeddings,
            "projection_dim": model.config.projection_dim,
            "logit_scale": float(model.logit_scale.detach().exp()),
            "verification": {"max_abs_difference": differences, "atol": VERIFY_ATOL},
            "files": [*files, METADATA_FILE],
        }
        (staging / METADATA_FILE).write_text(json.dumps(metadata, indent=2) + "\n")
        check_output_dir(target, overwrite)  # again: nothing appeared there meanwhile
        swap_in(staging, target)
    finally:
        model.train(was_training)
        shutil.rmtree(staging, ignore_errors=True)  # our own temporary folder; gone once swapped in
    return OnnxExport(target, target / VIDEO_FILE, target / TEXT_FILE, target / METADATA_FILE)


__all__ = ["VERIFY_ATOL", "OnnxExport", "OnnxExportError", "TextTower", "VideoTower", "export_onnx"]
