"""Evaluation embeddings: texts (`embed_texts`, the one text-embedding loop) and a streamed evaluation set
(`compute_embeddings`: videos and their texts, computed once, in batches, gathered across processes)."""

import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from ..data.streams import VideoTextStream, collate_video_text, load_video_text_stream


def _embed_tokens(model, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """(N, D) L2-normalised float32 text embeddings of tokenised texts, on the model's device."""
    text = model.get_text_features(input_ids=input_ids, attention_mask=attention_mask).pooler_output
    return F.normalize(text.float(), dim=-1)


@torch.no_grad()
def embed_texts(model, processor, texts: list[str], batch_size: int = 256, device=None) -> torch.Tensor:
    """(N, D) L2-normalised float32 embeddings of `texts`, in order, on the CPU: the model's projected text
    embedding (`get_text_features(...).pooler_output`), in eval mode. `processor` tokenises `batch_size`
    texts at a time (padded to the longest of the batch, truncated to CLIP's 77 tokens), which run on
    `device` (default: the device of the model's parameters). The numbers do not depend on `batch_size`.

    Example (a tiny untrained model):

    ```python
    >>> import torch
    >>> from vidla_hf import VidLAConfig, VidLAModel, VidLAProcessor, VidLAVideoProcessor, build_clip_tokenizer
    >>> from vidla_hf.evaluation import embed_texts
    >>> model = VidLAModel(VidLAConfig.from_preset("vidla-tiny"))  # embeddings of 128
    >>> processor = VidLAProcessor(VidLAVideoProcessor(), build_clip_tokenizer())
    >>> embeds = embed_texts(model, processor, ["a red circle moves left", "a blue square", ""], batch_size=2)
    >>> embeds.shape, embeds.dtype, embeds.device.type
    (torch.Size([3, 128]), torch.float32, 'cpu')
    >>> torch.allclose(embeds.norm(dim=-1), torch.ones(3))
    True

    ```
    """
    if isinstance(texts, str) or not isinstance(texts, (list, tuple)):
        raise TypeError(f"`texts` must be a list of strings, got {type(texts).__name__}.")
    if not texts:
        raise ValueError("`texts` is empty: pass at least one text.")
    for index, text in enumerate(texts):
        if not isinstance(text, str):
            raise TypeError(f"`texts[{index}]` must be a string, got {type(text).__name__} ({text!r:.100}).")
    if isinstance(batch_size, bool) or not isinstance(batch_size, int):
        raise TypeError(f"`batch_size` must be an integer >= 1, got {batch_size!r}.")
    if batch_size < 1:
        raise ValueError(f"`batch_size` must be an integer >= 1, got {batch_size!r}.")
    device = torch.device(device) if device is not None else next(model.parameters()).device
    was_training = model.training
    model.eval()
    try:
        embeds = []
        for start in range(0, len(texts), batch_size):
            tokens = processor(text=list(texts[start : start + batch_size]), return_tensors="pt").to(device)
            embeds.append(_embed_tokens(model, tokens["input_ids"], tokens["attention_mask"]).cpu())
    finally:
        model.train(was_training)
    return torch.cat(embeds)


@torch.no_grad()
def compute_embeddings(
    model,
    processor,
    source: str,
    split: str = "val",
    num_frames: int | None = None,
    batch_size: int = 32,
    max_samples: int | None = None,
    accelerator=None,
    video_column: str = "mp4",
    caption_column: str = "caption",
    subtitle_column: str = "subtitle",
    metadata_column: str | None = "json",
    num_workers: int = 1,
) -> dict:
    """One pass over `source` (eval mode: uniform frames, centre crop): normalised video, caption and
    subtitle embeddings, keys and metadata, in stream order. With an `accelerator`, each process embeds its
    share and the results are gathered on every process. Corrupt samples are skipped (and counted in
    `"skipped"`).

    Example (a tiny untrained model on six synthetic clips):

    ```python
    >>> import shutil, tempfile
    >>> from vidla_hf import VidLAConfig, VidLAModel, VidLAProcessor, VidLAVideoProcessor, build_clip_tokenizer
    >>> from vidla_hf.data.synthetic import generate_synthetic_dataset
    >>> from vidla_hf.evaluation.embeddings import compute_embeddings
    >>> data = tempfile.mkdtemp()
    >>> _ = generate_synthetic_dataset(data, {"val": 6}, clips_per_shard=6)
    >>> model = VidLAModel(VidLAConfig.from_preset("vidla-tiny", num_frames=2))  # 64 px, embeddings of 128
    >>> video_processor = VidLAVideoProcessor(
    ...     num_frames=2, size={"shortest_edge": 64}, crop_size={"height": 64, "width": 64}
    ... )
    >>> processor = VidLAProcessor(video_processor, build_clip_tokenizer())
    >>> out = compute_embeddings(model, processor, data, "val", batch_size=4)
    >>> out["video_embeds"].shape, out["caption_embeds"].shape, len(out["keys"]), out["skipped"]
    (torch.Size([6, 128]), torch.Size([6, 128]), 6, 0)
    >>> shutil.rmtree(data)

    ```
    """
    rank, world = (accelerator.process_index, accelerator.num_processes) if accelerator else (0, 1)
    dataset = load_video_text_stream(source, split, video_column=video_column, rank=rank, world_size=world)
    stream = VideoTextStream(
        dataset,
        processor,
        video_column,
        caption_column,
        subtitle_column,
        metadata_column,
        num_frames=num_frames or processor.video_processor.num_frames,
        training=False,
        keep_metadata=True,
    )
    loader = torch.utils.data.DataLoader(
        stream,
        batch_size=batch_size,
        collate_fn=collate_video_text,
        num_workers=min(num_workers, 1),
        generator=torch.Generator(),
    )
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    out = {
        "keys": [],
        "metadata": [],
        "video_embeds": [],
        "caption_embeds": [],
        "subtitle_embeds": [],
        "skipped": 0,
    }
    progress = tqdm(
        desc="embedding",
        unit="clip",
        disable=accelerator is not None and not accelerator.is_local_main_process,
    )
    for batch in loader:
        first_pass = [i for i, p in enumerate(batch["positions"]) if p[1] == 0]
        if max_samples is not None:
            first_pass = first_pass[: max(0, max_samples - len(out["keys"]))]
        out["skipped"] += batch["skipped"] if first_pass else 0
        if not first_pass:
            break
        pick = torch.tensor(first_pass)
        video = model.get_video_features(batch["pixel_values_videos"][pick].to(device)).pooler_output
        out["video_embeds"].append(F.normalize(video.float(), dim=-1).cpu())
        for role in ("caption", "subtitle"):  # tokenised by the stream, as `embed_texts` tokenises
            ids, mask = batch[f"{role}_ids"][pick].to(device), batch[f"{role}_mask"][pick].to(device)
            out[f"{role}_embeds"].append(_embed_tokens(model, ids, mask).cpu())
        out["keys"] += [batch["keys"][i] for i in first_pass]
        out["metadata"] += [batch["metadata"][i] for i in first_pass]
        progress.update(len(first_pass))
    progress.close()
    model.train(was_training)
    for name in ("video_embeds", "caption_embeds", "subtitle_embeds"):
        out[name] = torch.cat(out[name]) if out[name] else torch.empty(0)
    if accelerator is not None and world > 1:
        from accelerate.utils import gather_object

        shares = gather_object([out])  # every process's `out`, in rank order
        out = {
            "keys": [key for share in shares for key in share["keys"]],
            "metadata": [meta for share in shares for meta in share["metadata"]],
            "skipped": sum(share["skipped"] for share in shares),
            **{
                name: torch.cat([share[name] for share in shares])
                for name in ("video_embeds", "caption_embeds", "subtitle_embeds")
            },
        }
    if not out["keys"]:
        raise ValueError(f"No usable sample in {source!r} (split {split!r}).")
    return out


__all__ = ["compute_embeddings", "embed_texts"]
