"""Zero-shot video classification and video-text retrieval pipelines (registered on `import vidla_hf`)."""

from .video_text_retrieval import VideoTextRetrievalPipeline
from .zero_shot_video_classification import ZeroShotVideoClassificationPipeline

__all__ = ["VideoTextRetrievalPipeline", "ZeroShotVideoClassificationPipeline"]
