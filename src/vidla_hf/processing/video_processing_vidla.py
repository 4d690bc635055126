"""VidLA video processor: decode, sample frames, resize/crop (or augment), normalise with CLIP's statistics.

Kept free of `vidla_hf` imports (siblings only) so that it works as Hub remote code.
"""

from collections.abc import Callable, Iterator
from functools import partial

import numpy as np
import torch
from huggingface_hub.dataclasses import validate_typed_dict
from transformers.image_processing_utils import BatchFeature
from transformers.image_utils import OPENAI_CLIP_MEAN, OPENAI_CLIP_STD, PILImageResampling, SizeDict
from transformers.processing_utils import Unpack, VideosKwargs
from transformers.video_processing_utils import BaseVideoProcessor
from transformers.video_utils import VideoMetadata

from .frame_sampling import SAMPLING_STRATEGIES, sample_frame_indices
from .input_checks import check_keywords, check_local_folder
from .video_decoding import BACKENDS, check_source, read_video
from .video_inputs import VIDEO_TYPES, check_frames, frame_size, is_single_video, is_source, select_rgb_frames

# Paper §5: multi-scale random crop with scales 1.0 and 0.8, aspect kept, and random horizontal flip.
TRAINING_CROP_SCALES = (1.0, 0.8)
# Keys a saved configuration holds besides the options (`from_pretrained` passes them to `__init__`).
# Frames resized per call of the resize: see `_resize_and_crop`.
FRAMES_PER_RESIZE = 4
SAVED_METADATA_KEYS = ("auto_map", "video_processor_type", "image_processor_type", "processor_class")


class VidLAVideoProcessorKwargs(VideosKwargs, total=False):
    r"""
    training (`bool`):
        Training augmentation (multi-scale random crop and random horizontal flip, the same for every frame
        of a video) and random frame sampling instead of resize + centre crop and uniform sampling.
    random_flip (`bool`):
        In training, flip each video horizontally with probability ½ (the paper's augmentation). Turn it off
        when texts name directions ("moves left"): a flip makes them wrong. The crop drawn is the same either way.
    frame_sampling (`str`):
        `"uniform"` or `"random"`; defaults to `"random"` when `training`, else `"uniform"`.
    seed (`int`):
        Seeds frame sampling and augmentation for this call.
    video_backend (`str`):
        `"auto"`, `"torchcodec"`, `"decord"` or `"pyav"` for paths, bytes and file objects.
    """

    training: bool
    random_flip: bool
    frame_sampling: str | None
    seed: int | None
    video_backend: str


class VidLAVideoProcessor(BaseVideoProcessor):
    r"""
    Turns videos into `pixel_values_videos` of shape `(batch, frames, 3, 224, 224)` for [`VidLAModel`].

    Evaluation (default): `num_frames` frames at segment centres, shorter side resized to 224, centre crop,
    CLIP normalisation. Training (`training=True`): one random frame per segment, a random square crop of
    scale 1.0 or 0.8 of the shorter side, resized to 224, and a random horizontal flip (`random_flip=False`:
    none) — the same crop and flip for every frame of a video — seeded by `seed`.

    Videos may be paths, bytes, binary file objects, numpy `(T, H, W, C)` uint8 arrays, torch `(T, C, H, W)`
    uint8/float tensors (floats are read on the 0–255 scale unless `do_rescale=False`, and are not clamped
    after bicubic resizing as uint8 frames are) or lists of PIL
    images, one video or a list of them, of any lengths and sizes.

    A call keeps nothing on the processor (its random generators and backend are passed down as arguments),
    so one instance may serve several threads at once.

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
    random_flip = True
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
        """`BaseVideoProcessor.preprocess`'s steps, with the call's state handed to the steps as arguments.

        The base class has no way to hand per-call state to its hooks; kept on `self` it would be shared by
        threads calling one processor. So the frame generator goes to `sample_frames`, the backend to
        `_decode_and_sample_videos` and the crop/flip generator to `_preprocess`.
        """
        self.check_call_kwargs(kwargs)
        validate_typed_dict(self.valid_kwargs, kwargs)
        for key in self.valid_kwargs.__annotations__:
            kwargs.setdefault(key, getattr(self, key, None))
        seed, backend = kwargs.pop("seed"), kwargs.pop("video_backend")
        # One seeded generator samples the frames of the whole call and seeds the crop/flip generator, so
        # `seed` fixes the whole call.
        frame_rng = np.random.default_rng(self.seed if seed is None else seed)
        augment_rng = torch.Generator().manual_seed(int(frame_rng.integers(2**62)))
        do_sample_frames = kwargs.pop("do_sample_frames")
        device, do_convert_rgb = kwargs.pop("device"), kwargs.pop("do_convert_rgb")
        input_data_format, video_metadata = kwargs.pop("input_data_format"), kwargs.pop("video_metadata")
        sample_indices_fn = partial(self.sample_frames, generator=frame_rng, **kwargs)
        videos, video_metadata = self._decode_and_sample_videos(
            videos,
            video_metadata=video_metadata,
            do_sample_frames=do_sample_frames,
            sample_indices_fn=sample_indices_fn if do_sample_frames else None,
            video_backend=self.video_backend if backend is None else backend,
        )
        videos = self._prepare_input_videos(
            videos, do_convert_rgb=do_convert_rgb, input_data_format=input_data_format, device=device
        )
        kwargs = self._standardize_kwargs(**kwargs)
        self._validate_preprocess_kwargs(**kwargs)
        kwargs.pop("data_format")
        return_metadata = kwargs.pop("return_metadata")
        outputs = self._preprocess(videos=videos, generator=augment_rng, **kwargs)
        if return_metadata:
            outputs["video_metadata"] = video_metadata
        return outputs

    def _decode_and_sample_videos(
        self,
        videos,
        video_metadata=None,
        do_sample_frames: bool | None = None,
        sample_indices_fn: Callable | None = None,
        video_backend: str = "auto",
    ) -> tuple[list[torch.Tensor], list[VideoMetadata]]:
        single = is_single_video(videos)
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
            if is_source(video):
                check_source(video)
                inputs.append(video)
            else:
                inputs.append(check_frames(video, "`videos`" if single else f"`videos[{index}]`"))

        def indices_for(metadata: VideoMetadata):
            if not do_sample_frames:
                return np.arange(metadata.total_num_frames)
            return np.asarray(sample_indices_fn(metadata=metadata))

        decoded, metadatas = [], []
        for video in inputs:
            if is_source(video):
                frames, metadata = read_video(video, indices_for, backend=video_backend)
                frames = torch.from_numpy(frames).permute(0, 3, 1, 2)  # (T, 3, H, W), a channels-last view
            else:
                height, width = frame_size(video)
                metadata = VideoMetadata(total_num_frames=video.shape[0], height=height, width=width)
                metadata.frames_indices = indices_for(metadata)
                frames = select_rgb_frames(video, metadata.frames_indices)
            decoded.append(frames)
            metadatas.append(metadata)
        return decoded, metadatas

    def _prepare_input_videos(self, videos, do_convert_rgb=None, input_data_format=None, device=None):
        # `_decode_and_sample_videos` already produced RGB (T, 3, H, W) tensors.
        return [video.to(device) if device is not None else video for video in videos]

    def _draw_crop(self, height: int, width: int, generator: torch.Generator) -> tuple[int, int, int, bool]:
        """Paper §5 augmentation of a resized `height` x `width` video: one square crop of side
        scale·min(H, W) (scale ∈ {1.0, 0.8}) at a random place, and a horizontal flip with p = ½.
        Returns `(top, left, side, flip)`, drawn once per video so that every frame gets the same."""
        scale = TRAINING_CROP_SCALES[int(torch.randint(len(TRAINING_CROP_SCALES), (1,), generator=generator))]
        side = max(1, int(round(scale * min(height, width))))
        top = int(torch.randint(height - side + 1, (1,), generator=generator))
        left = int(torch.randint(width - side + 1, (1,), generator=generator))
        return top, left, side, bool(torch.rand((), generator=generator) < 0.5)

    def _resize_and_crop(
        self,
        video: torch.Tensor,
        do_resize: bool,
        size: SizeDict,
        resample,
        do_center_crop: bool,
        crop_size: SizeDict,
        training: bool,
        random_flip: bool,
        generator: torch.Generator | None,
    ) -> Iterator[torch.Tensor]:
        """The geometry of a `(T, 3, H, W)` video, a few frames at a time: yields the pieces, in frame order.

        Frames are resized independently, so a few at a time give the same pixels as all at once; but the
        resize's scratch buffers stay small, and the allocator reuses their memory instead of mapping (and
        page-faulting) fresh memory on every call.
        """
        crop = None
        for frames in video.split(FRAMES_PER_RESIZE):
            if do_resize:  # torchvision's bicubic resize of uint8 frames, fastest on channels-last views
                frames = self.resize(frames, size=size, resample=resample)
            if training:
                crop = crop or self._draw_crop(*frames.shape[-2:], generator)
                top, left, side, flip = crop
                frames = self.resize(
                    frames[..., top : top + side, left : left + side],
                    size=SizeDict(height=crop_size.height, width=crop_size.width),
                    resample=resample,
                )
                frames = frames.flip(-1) if flip and random_flip else frames
            elif do_center_crop:
                frames = self.center_crop(frames, crop_size)
            yield frames

    def _float32_videos(
        self, videos: list[torch.Tensor], geometry: tuple, stack: bool
    ) -> tuple[list[torch.Tensor], torch.Tensor | None]:
        """Each video's pieces (`_resize_and_crop`) copied, as they come, into a float32 `(T, 3, h, w)` tensor:
        one copy converts and lays out. When stacking, these are the rows of one batch tensor, allocated at the
        first piece (when the frame size is known): no second copy to stack them."""
        outputs, batch = [], None
        for index, video in enumerate(videos):
            out, start = None, 0
            for piece in self._resize_and_crop(video, *geometry):
                if out is None:
                    shape = (len(video), *piece.shape[1:])
                    if stack and batch is None:
                        batch = piece.new_empty((len(videos), *shape), dtype=torch.float32)
                    fits = stack and batch.shape[1:] == shape
                    out = batch[index] if fits else piece.new_empty(shape, dtype=torch.float32)
                out[start : start + len(piece)].copy_(piece)
                start += len(piece)
            outputs.append(out)
        return outputs, batch

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
        random_flip: bool = True,
        generator: torch.Generator | None = None,
        return_tensors=None,
        **kwargs,
    ) -> BatchFeature:
        geometry = (do_resize, size, resample, do_center_crop, crop_size, training, random_flip, generator)
        stack = return_tensors is not None
        if do_normalize:
            outputs, batch = self._float32_videos(videos, geometry, stack)
        else:
            outputs = [torch.cat(list(self._resize_and_crop(video, *geometry))) for video in videos]
            outputs = [video * rescale_factor for video in outputs] if do_rescale else outputs
        shapes = [tuple(video.shape) for video in outputs]
        if stack and len(set(shapes)) > 1:
            raise ValueError(
                f"Videos of different shapes cannot be batched: {shapes}; keep `do_sample_frames=True` and a "
                "crop size."
            )
        if do_normalize:  # the transformers backend's fused rescale and normalise, in place
            scale = 1.0 / rescale_factor if do_rescale else 1.0
            mean = (
                (torch.tensor(image_mean, dtype=torch.float32) * scale).view(-1, 1, 1).to(outputs[0].device)
            )
            std = (torch.tensor(image_std, dtype=torch.float32) * scale).view(-1, 1, 1).to(outputs[0].device)
            for video in [batch] if stack else outputs:
                video.sub_(mean).div_(std)  # (x - mean/factor) / (std/factor)
            pixel_values = batch if stack else outputs
        else:
            pixel_values = torch.stack(outputs) if stack else outputs
        return BatchFeature(data={"pixel_values_videos": pixel_values}, tensor_type=return_tensors)


__all__ = ["VidLAVideoProcessor"]
