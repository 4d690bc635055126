"""vidla_hf: VidLA video-language alignment on the Hugging Face stack.

Importing the package registers VidLA with transformers' Auto classes, and marks the config and model
for remote code, so that `save_pretrained` writes the code files and `auto_map` next to the weights.
"""

from transformers import (
    AutoConfig,
    AutoModel,
    AutoModelForVideoClassification,
    AutoProcessor,
    AutoVideoProcessor,
)
from transformers.pipelines import PIPELINE_REGISTRY

from .modeling import (
    PRESETS,
    VidLAConfig,
    VidLAForVideoClassification,
    VidLAModel,
    VidLAOutput,
    VidLAPreTrainedModel,
    VidLATextConfig,
    VidLATextModel,
    VidLAVisionConfig,
    VidLAVisionModel,
    VidLAVisionModelOutput,
    convert_clip_state_dict,
)
from .pipelines import VideoTextRetrievalPipeline, ZeroShotVideoClassificationPipeline
from .processing import VidLAProcessor, VidLAVideoProcessor, build_clip_tokenizer

__version__ = "0.1.0"


def _register_auto_classes() -> None:
    for config_class, model_class in (
        (VidLAConfig, VidLAModel),
        (VidLAVisionConfig, VidLAVisionModel),
        (VidLATextConfig, VidLATextModel),
    ):
        AutoConfig.register(config_class.model_type, config_class, exist_ok=True)
        AutoModel.register(config_class, model_class, exist_ok=True)
    AutoModelForVideoClassification.register(VidLAConfig, VidLAForVideoClassification, exist_ok=True)
    AutoVideoProcessor.register(VidLAConfig, VidLAVideoProcessor, exist_ok=True)
    AutoProcessor.register(VidLAConfig, VidLAProcessor, exist_ok=True)
    VidLAConfig.register_for_auto_class()
    VidLAModel.register_for_auto_class("AutoModel")
    VidLAForVideoClassification.register_for_auto_class("AutoModelForVideoClassification")
    VidLAVideoProcessor.register_for_auto_class("AutoVideoProcessor")
    VidLAProcessor.register_for_auto_class("AutoProcessor")
    for task, pipeline_class in (
        ("zero-shot-video-classification", ZeroShotVideoClassificationPipeline),
        ("video-text-retrieval", VideoTextRetrievalPipeline),
    ):
        if task not in PIPELINE_REGISTRY.supported_tasks:
            PIPELINE_REGISTRY.register_pipeline(
                task, pipeline_class=pipeline_class, pt_model=AutoModel, type="multimodal"
            )


_register_auto_classes()

__all__ = [
    "PRESETS",
    "VideoTextRetrievalPipeline",
    "ZeroShotVideoClassificationPipeline",
    "VidLAProcessor",
    "VidLAVideoProcessor",
    "build_clip_tokenizer",
    "VidLAConfig",
    "VidLAForVideoClassification",
    "VidLAModel",
    "VidLAOutput",
    "VidLAPreTrainedModel",
    "VidLATextConfig",
    "VidLATextModel",
    "VidLAVisionConfig",
    "VidLAVisionModel",
    "VidLAVisionModelOutput",
    "convert_clip_state_dict",
]
