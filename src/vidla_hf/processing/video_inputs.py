"""The videos a processor call accepts: sources to decode, and frames already in memory (numpy, torch, PIL).

In-memory videos are checked whole (shape, dtype, finite values) before any video of a batch is decoded, and
converted to RGB only after frame sampling, on the frames kept. Kept free of `vidla_hf` imports so that it
works as Hub remote code.
"""

import io
import os

import numpy as np
import torch
from PIL import Image

VIDEO_TYPES = (
    "a path, bytes, a binary file object, a numpy (T, H, W, C) uint8 array, a torch (T, C, H, W) uint8 or "
    "float tensor, or a list of PIL images"
)


def is_source(item) -> bool:
    """Whether `item` is a video to decode (a path, bytes or a binary file object)."""
    return isinstance(item, (str, os.PathLike, bytes, bytearray, memoryview, io.IOBase))


def is_single_video(videos) -> bool:
    """Whether `videos` is one video rather than a batch of them."""
    if is_source(videos):
        return True
    if isinstance(videos, (np.ndarray, torch.Tensor)):
        return videos.ndim == 4
    return isinstance(videos, (list, tuple)) and len(videos) > 0 and isinstance(videos[0], Image.Image)


def _pil_frames(video: list, name: str) -> np.ndarray:
    if not video:
        raise ValueError(f"{name} is an empty list of frames; a video needs at least one frame.")
    if not all(isinstance(frame, Image.Image) for frame in video):
        kinds = sorted({type(frame).__name__ for frame in video})
        raise TypeError(f"{name}: a video given as a list must be a list of PIL images, got {kinds}.")
    frames = []
    for frame in video:
        if frame.mode in (
            "RGBA",
            "LA",
            "P",
        ):  # composited onto white, as CLIP's `convert_to_rgb` users expect
            frame = frame.convert("RGBA")
            background = Image.new("RGBA", frame.size, (255, 255, 255, 255))
            frame = Image.alpha_composite(background, frame)
        frames.append(np.asarray(frame.convert("RGB")))
    if len({f.shape for f in frames}) > 1:
        raise ValueError(
            f"The frames of one video must share a size, got {sorted({f.shape for f in frames})} in {name}."
        )
    return np.stack(frames)  # (T, H, W, 3)


def check_frames(video, name: str = "`videos`") -> np.ndarray | torch.Tensor:
    """Checks an in-memory video and returns it as a numpy `(T, H, W, C)` uint8 array or a torch `(T, C, H, W)`
    tensor (a list of PIL images becomes a numpy array), C being 1, 3 or 4. `name` says which video of the
    call an error is about."""
    if isinstance(video, (list, tuple)):
        video = _pil_frames(video, name)
    if isinstance(video, np.ndarray):
        if video.ndim != 4 or video.shape[-1] not in (1, 3, 4):
            raise ValueError(
                f"A numpy video must have shape (frames, height, width, 1|3|4), got {video.shape} in {name}."
            )
        if video.dtype != np.uint8:
            raise ValueError(
                f"A numpy video must be uint8, got {video.dtype} with shape {video.shape} in {name}."
            )
        shape = video.shape
        frames_count, height, width = shape[:3]
    elif isinstance(video, torch.Tensor):
        if video.ndim != 4 or video.shape[1] not in (1, 3, 4):
            raise ValueError(
                "A torch video must have shape (frames, 1|3|4, height, width), got "
                f"{tuple(video.shape)} in {name}."
            )
        if not (video.dtype == torch.uint8 or video.is_floating_point()):
            raise ValueError(f"A torch video must be uint8 or floating point, got {video.dtype} in {name}.")
        shape = tuple(video.shape)
        frames_count, height, width = shape[0], shape[2], shape[3]
    else:
        raise TypeError(f"A video must be {VIDEO_TYPES}, got {type(video).__name__} in {name}.")
    if frames_count == 0 or height == 0 or width == 0:
        raise ValueError(
            f"{name} has shape {shape}: a video needs at least one frame, of non-zero height and width."
        )
    if isinstance(video, torch.Tensor) and video.is_floating_point():
        finite = torch.isfinite(video)
        if not finite.all():
            first_frame = int((~finite).flatten(1).any(1).nonzero()[0])
            raise ValueError(
                f"{name} has {int(video.isnan().sum())} NaN and {int(video.isinf().sum())} infinite pixel "
                f"values (shape {shape}, the first in frame {first_frame}); pixel values must be finite "
                "(0-255, or 0-1 with `do_rescale=False`)."
            )
    return video


def frame_size(video: np.ndarray | torch.Tensor) -> tuple[int, int]:
    """`(height, width)` of a video returned by `check_frames`."""
    return tuple(video.shape[1:3]) if isinstance(video, np.ndarray) else tuple(video.shape[-2:])


def select_rgb_frames(video: np.ndarray | torch.Tensor, indices: np.ndarray) -> torch.Tensor:
    """The frames at `indices` of a video returned by `check_frames`, as an RGB `(T, 3, H, W)` tensor.

    Grayscale is repeated to three channels; RGBA is composited onto white (floats are on the 0-255 scale
    too). Numpy frames come back as a channels-last view of the selected frames, the layout torchvision's
    uint8 resize is fastest on: nothing but the kept frames is copied.
    """
    if isinstance(video, np.ndarray):
        video = torch.from_numpy(np.ascontiguousarray(video[indices])).permute(0, 3, 1, 2)  # (T, C, H, W)
    else:
        video = video.index_select(0, torch.as_tensor(indices, device=video.device))
    channels = video.shape[1]
    if channels == 1:
        return video.expand(-1, 3, -1, -1).contiguous(memory_format=torch.channels_last)
    if channels == 4:
        alpha = video[:, 3:].float() / 255.0
        rgb = video[:, :3].float() * alpha + 255.0 * (1 - alpha)
        return rgb.round().to(torch.uint8) if video.dtype == torch.uint8 else rgb.to(video.dtype)
    return video


__all__ = ["VIDEO_TYPES", "check_frames", "frame_size", "is_single_video", "is_source", "select_rgb_frames"]
