"""VidLA video processor: decode, sample frames, resize/crop (or augment), normalise with CLIP's statistics.

Kept free of `vidla_hf` imports (siblings only) so that it works as Hub remote code.
"""

import io
import os
from collections.abc import Callable

import numpy as np
import torch
from PIL import Image
from transformers.image_processing_utils import BatchFeature
from transformers.image_utils import OPENAI_CLIP_MEAN, OPENAI_CLIP_STD, PILImageResampling, SizeDict
from transformers.processing_utils import Unpack, VideosKwargs
from transformers.video_processing_utils import BaseVideoProcessor
from transformers.video_utils import VideoMetadata

from .frame_sampling import SAMPLING_STRATEGIES, sample_frame_indices
from .input_checks import check_keywords, check_local_folder
from .video_decoding import BACKENDS, check_source, read_video

# Paper §5: multi-scale random crop with scales 1.0 and 0.8, aspect kept, and random horizontal flip.
TRAINING_CROP_SCALES = (1.0, 0.8)
# Keys a saved configuration holds besides the options (`from_pretrained` passes them to `__init__`).
SAVED_METADATA_KEYS = ("auto_map", "video_processor_type", "image_processor_type", "processor_class")
VIDEO_TYPES = (
    "a path, bytes, a binary file object, a numpy (T, H, W, C) uint8 array, a torch (T, C, H, W) uint8 or "
    "float tensor, or a list of PIL images"
)


class VidLAVideoProcessorKwargs(VideosKwargs, total=False):
    r"""
    training (`bool`):
        Training augmentation (multi-scale random crop and random horizontal flip, the same for every frame
        of a video) and random frame sampling instead of resize + centre crop and uniform sampling.
    frame_sampling (`str`):
        `"uniform"` or `"random"`; defaults to `"random"` when `training`, else `"uniform"`.
    seed (`int`):
        Seeds frame sampling and augmentation for this call.
    video_backend (`str`):
        `"auto"`, `"decord"`, `"pyav"` or `"torchcodec"` for paths, bytes and file objects.
    """

    training: bool
    frame_sampling: str | None
    seed: int | None
    video_backend: str


def _is_source(item) -> bool:
    return isinstance(item, (str, os.PathLike, bytes, bytearray, memoryview, io.IOBase))


def _is_single_video(videos) -> bool:
    if _is_source(videos):
        return True
    if isinstance(videos, (np.ndarray, torch.Tensor)):
        return videos.ndim == 4
    return isinstance(videos, (list, tuple)) and len(videos) > 0 and isinstance(videos[0], Image.Image)


def _frames_to_rgb_tensor(video, name: str = "`videos`") -> torch.Tensor:
    """A `(T, 3, H, W)` tensor from numpy `(T, H, W, C)`, torch `(T, C, H, W)` or a list of PIL images.

    Grayscale is repeated to three channels; RGBA is composited onto white (as `PIL.Image.convert` users
    expect from CLIP's `convert_to_rgb`). `name` says which video of the call an error is about.
    """
    if isinstance(video, (list, tuple)):
        if not video:
            raise ValueError(f"{name} is an empty list of frames; a video needs at least one frame.")
        if not all(isinstance(frame, Image.Image) for frame in video):
            kinds = sorted({type(frame).__name__ for frame in video})
            raise TypeError(f"{name}: a video given as a list must be a list of PIL images, got {kinds}.")
        frames = []
        for frame in video:
            if frame.mode in ("RGBA", "LA", "P"):
                frame = frame.convert("RGBA")
                background = Image.new("RGBA", frame.size, (255, 255, 255, 255))
                frame = Image.alpha_composite(background, frame)
            frames.append(np.asarray(frame.convert("RGB")))
        if len({f.shape for f in frames}) > 1:
            raise ValueError(
                f"The frames of one video must share a size, got {sorted({f.shape for f in frames})} "
                f"in {name}."
            )
        video = np.stack(frames)  # (T, H, W, 3)
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
        video = torch.from_numpy(np.ascontiguousarray(video)).permute(0, 3, 1, 2)  # (T, C, H, W)
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
    if video.is_floating_point():
        finite = torch.isfinite(video)
        if not finite.all():
            first_frame = int((~finite).flatten(1).any(1).nonzero()[0])
            raise ValueError(
                f"{name} has {int(video.isnan().sum())} NaN and {int(video.isinf().sum())} infinite pixel "
                f"values (shape {shape}, the first in frame {first_frame}); pixel values must be finite "
                "(0-255, or 0-1 with `do_rescale=False`)."
            )
    channels = video.shape[1]
    if channels == 1:
        video = video.expand(-1, 3, -1, -1)
    elif channels == 4:
        alpha = video[:, 3:].float() / 255.0  # floats are on the 0-255 scale too
        rgb = video[:, :3].float() * alpha + 255.0 * (1 - alpha)
        video = rgb.round().to(torch.uint8) if video.dtype == torch.uint8 else rgb.to(video.dtype)
    return video.contiguous()


class VidLAVideoProcessor(BaseVideoProcessor):
    r"""
    Turns videos into `pixel_values_videos` of shape `(batch, frames, 3, 224, 224)` for [`VidLAModel`].

    Evaluation (default): `num_frames` frames at segment centres, shorter side resized to 224, centre crop,
    CLIP normalisation. Training (`training=True`): one random frame per segment, a random square crop of
    scale 1.0 or 0.8 of the shorter side, resized to 224, and a random horizontal flip — the same crop and
    flip for every frame of a video — seeded by `seed`.

    Videos may be paths, bytes, binary file objects, numpy `(T, H, W, C)` uint8 arrays, torch `(T, C, H, W)`
    uint8/float tensors (floats are read on the 0–255 scale unless `do_rescale=False`, and are not clamped
    after bicubic resizing as uint8 frames are) or lists of PIL
    images, one video or a list of them, of any lengths and sizes.

    Example:

    ```python
    >>> import numpy as np
    >>> from vidla_hf import VidLAVideoProcessor
    >>> processor = VidLAVideoProcessor(num_frames=8)
    >>> videos = [np.zeros((30, 240, 320, 3), np.uint8), np.zeros((5, 480, 360, 3), np.uint8)]
    >>> processor(videos, return_tensors="pt")["pixel_values_videos"].shape
    torch.Size([2, 8, 3, 224, 224])

    ```
    """

    resample = PILImageResampling.BICUBIC
    image_mean = OPENAI_CLIP_MEAN
    image_std = OPENAI_CLIP_STD
    size = {"shortest_edge": 224}
    crop_size = {"height": 224, "width": 224}
    default_to_square = False
    do_resize = True
    do_center_crop = True
    do_rescale = True
    do_normalize = True
    do_convert_rgb = True
    do_sample_frames = True
    num_frames = 12
    training = False
    frame_sampling = None
    seed = None
    video_backend = "auto"
    valid_kwargs = VidLAVideoProcessorKwargs
    model_input_names = ["pixel_values_videos"]

    def __init__(self, **kwargs: Unpack[VidLAVideoProcessorKwargs]):
        accepted = set(self.valid_kwargs.__annotations__) | set(SAVED_METADATA_KEYS)
        accepted |= {
            k for k in dir(type(self)) if not k.startswith("_") and not callable(getattr(type(self), k))
        }
        check_keywords(kwargs, accepted, f"{type(self).__name__}()")
        super().__init__(**kwargs)
        self._check_options({})

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path, *args, **kwargs):
        """As `BaseVideoProcessor.from_pretrained`, but a path-like argument (`./run`, `/abs/run`, `~/run`,
        `run/`) that does not exist fails at once instead of being looked up on the Hub; `~` is expanded."""
        return super().from_pretrained(check_local_folder(pretrained_model_name_or_path), *args, **kwargs)

    def _check_options(self, kwargs: dict) -> None:
        """Checks the options of a call (`kwargs`, else this processor's own), before any decoding."""

        def option(key):
            value = kwargs.get(key)
            return getattr(self, key, None) if value is None else value

        num_frames = option("num_frames")
        if isinstance(num_frames, bool) or not isinstance(num_frames, (int, np.integer)) or num_frames < 1:
            raise ValueError(
                f"`num_frames` must be an int >= 1 (frames sampled per video), got {num_frames!r}."
            )
        if option("fps") is not None:
            raise ValueError(
                f"`fps` sampling is not supported, got fps={option('fps')!r}: VidLA samples `num_frames` "
                "frames per video (segment centres, or one random frame per segment in training); leave "
                "`fps` as None."
            )
        frame_sampling = option("frame_sampling")
        if frame_sampling is not None and frame_sampling not in SAMPLING_STRATEGIES:
            raise ValueError(
                f"`frame_sampling` must be one of {SAMPLING_STRATEGIES} or None, got {frame_sampling!r}."
            )
        if option("video_backend") not in BACKENDS:
            raise ValueError(f"`video_backend` must be one of {BACKENDS}, got {option('video_backend')!r}.")
        seed = option("seed")
        if seed is not None and (
            isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0
        ):
            raise ValueError(f"`seed` must be None or an int >= 0, got {seed!r}.")

    def check_call_kwargs(self, kwargs: dict) -> None:
        """Raises for a keyword `preprocess` does not know (naming the closest known one) or a bad option."""
        check_keywords(kwargs, self.valid_kwargs.__annotations__, f"{type(self).__name__}.__call__()")
        self._check_options(kwargs)

    def sample_frames(
        self,
        metadata: VideoMetadata,
        num_frames: int | None = None,
        training: bool = False,
        frame_sampling: str | None = None,
        generator: np.random.Generator | None = None,
        **kwargs,
    ) -> np.ndarray:
        """Exactly `num_frames` sorted indices: segment centres, or one random frame per segment in training."""
        strategy = frame_sampling or ("random" if training else "uniform")
        num_frames = self.num_frames if num_frames is None else num_frames
        return sample_frame_indices(metadata.total_num_frames, num_frames, strategy, generator)

    def preprocess(self, videos, **kwargs: Unpack[VidLAVideoProcessorKwargs]) -> BatchFeature:
        self.check_call_kwargs(kwargs)
        # Per-call state read by the hooks below (not serialised: removed when the call ends). One seeded
        # generator drives frame sampling and seeds the crop/flip generator, so `seed` fixes the whole call.
        seed = kwargs.get("seed")
        frame_rng = np.random.default_rng(self.seed if seed is None else seed)
        backend = kwargs.get("video_backend")
        self._call_state = {
            "frame_rng": frame_rng,
            "augment_rng": torch.Generator().manual_seed(int(frame_rng.integers(2**62))),
            "video_backend": self.video_backend if backend is None else backend,
        }
        try:
            return super().preprocess(videos, **kwargs)
        finally:
            del self._call_state

    def _decode_and_sample_videos(
        self,
        videos,
        video_metadata=None,
        do_sample_frames: bool | None = None,
        sample_indices_fn: Callable | None = None,
    ) -> tuple[list[torch.Tensor], list[VideoMetadata]]:
        single = _is_single_video(videos)
        if single:
            videos = [videos]
        if isinstance(videos, (np.ndarray, torch.Tensor)) and videos.ndim != 5:
            raise ValueError(
                "An array of videos must have 4 dims (one video: frames, ...) or 5 (a batch), got shape "
                f"{tuple(videos.shape)}."
            )
        if not isinstance(videos, (list, tuple, np.ndarray, torch.Tensor)):
            raise TypeError(
                f"`videos` must be a video ({VIDEO_TYPES}) or a list of videos, got {type(videos).__name__}."
            )
        if len(videos) == 0:
            raise ValueError(
                f"`videos` is empty ({type(videos).__name__} of length 0): pass at least one video "
                f"({VIDEO_TYPES})."
            )

        # Everything that can be checked without decoding is checked for the whole batch first.
        inputs = []
        for index, video in enumerate(videos):
            if _is_source(video):
                check_source(video)
                inputs.append(video)
            else:
                inputs.append(_frames_to_rgb_tensor(video, "`videos`" if single else f"`videos[{index}]`"))

        def indices_for(metadata: VideoMetadata):
            if not do_sample_frames:
                return np.arange(metadata.total_num_frames)
            return sample_indices_fn(metadata=metadata, generator=self._call_state["frame_rng"])

        decoded, metadatas = [], []
        for video in inputs:
            if _is_source(video):
                frames, metadata = read_video(video, indices_for, backend=self._call_state["video_backend"])
                frames = torch.from_numpy(frames).permute(0, 3, 1, 2)  # (T, 3, H, W)
            else:
                frames = video
                height, width = frames.shape[-2:]
                metadata = VideoMetadata(total_num_frames=frames.shape[0], height=height, width=width)
                metadata.frames_indices = indices_for(metadata)
                frames = frames[torch.as_tensor(metadata.frames_indices)]
            decoded.append(frames)
            metadatas.append(metadata)
        return decoded, metadatas

    def _prepare_input_videos(self, videos, do_convert_rgb=None, input_data_format=None, device=None):
        # `_decode_and_sample_videos` already produced RGB (T, 3, H, W) tensors.
        return [video.to(device) if device is not None else video for video in videos]

    def _random_crop_and_flip(self, video: torch.Tensor, crop_size: SizeDict, resample) -> torch.Tensor:
        """Paper §5 augmentation on a resized `(T, 3, H, W)` video: one square crop of side scale·min(H, W)
        (scale ∈ {1.0, 0.8}) at a random place, resized to the crop size, and a horizontal flip with p = ½."""
        generator = self._call_state["augment_rng"]
        height, width = video.shape[-2:]
        scale = TRAINING_CROP_SCALES[int(torch.randint(len(TRAINING_CROP_SCALES), (1,), generator=generator))]
        side = max(1, int(round(scale * min(height, width))))
        top = int(torch.randint(height - side + 1, (1,), generator=generator))
        left = int(torch.randint(width - side + 1, (1,), generator=generator))
        video = video[..., top : top + side, left : left + side]
        video = self.resize(
            video, size=SizeDict(height=crop_size.height, width=crop_size.width), resample=resample
        )
        if bool(torch.rand((), generator=generator) < 0.5):
            video = video.flip(-1)
        return video

    def _preprocess(
        self,
        videos: list[torch.Tensor],
        do_resize: bool,
        size: SizeDict,
        resample,
        do_center_crop: bool,
        crop_size: SizeDict,
        do_rescale: bool,
        rescale_factor: float,
        do_normalize: bool,
        image_mean,
        image_std,
        training: bool = False,
        return_tensors=None,
        **kwargs,
    ) -> BatchFeature:
        processed = []
        for video in videos:
            if do_resize:
                video = self.resize(video, size=size, resample=resample)
            if training:
                video = self._random_crop_and_flip(video, crop_size, resample)
            elif do_center_crop:
                video = self.center_crop(video, crop_size)
            video = self.rescale_and_normalize(
                video, do_rescale, rescale_factor, do_normalize, image_mean, image_std
            )
            processed.append(video)
        if return_tensors is not None and len({tuple(v.shape) for v in processed}) > 1:
            raise ValueError(
                "Videos of different shapes cannot be batched: "
                f"{[tuple(v.shape) for v in processed]}; keep `do_sample_frames=True` and a crop size."
            )
        pixel_values = torch.stack(processed) if return_tensors is not None else processed
        return BatchFeature(data={"pixel_values_videos": pixel_values}, tensor_type=return_tensors)


__all__ = ["VidLAVideoProcessor"]
