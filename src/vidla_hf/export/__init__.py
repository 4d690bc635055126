"""ONNX export of the two towers (`export_onnx`) and serving their embeddings with onnxruntime (`OnnxEmbedder`).

Needs the `export` extra (`pip install "vidla_hf[export]"`: onnx, onnxruntime, onnxscript).
"""

from .embedder import OnnxEmbedder
from .onnx import VERIFY_ATOL, OnnxExport, OnnxExportError, TextTower, VideoTower, export_onnx

__all__ = [
    "VERIFY_ATOL",
    "OnnxEmbedder",
    "OnnxExport",
    "OnnxExportError",
    "TextTower",
    "VideoTower",
    "export_onnx",
]
