"""Export a VidLA model's video and text towers to ONNX, to serve embeddings with onnxruntime.

    python examples/export_onnx.py --model outputs/vidla-pretrain --output_dir outputs/vidla-onnx \\
        [--num_frames N] [--dynamic_frames] [--overwrite]

Writes `video_tower.onnx` (frames → L2-normalised video embedding), `text_tower.onnx` (token ids and attention
mask → L2-normalised text embedding), the processor and `onnx_export.json` (input and output names, shapes,
opset, frame count, the differences from PyTorch measured on random inputs). The batch axis and the text length
are dynamic; the frame count is fixed (`--num_frames`, default the model's) unless `--dynamic_frames`.
--output_dir must be new or empty; `--overwrite` replaces only an earlier export. Serve with
`vidla_hf.export.OnnxEmbedder(output_dir)`. Needs `pip install -e ".[export]"`.
"""

import argparse
import json

from vidla_hf.export import export_onnx


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", required=True, help="A VidLA model folder (save_pretrained)")
    parser.add_argument("--output_dir", required=True)
    parser.add_argument(
        "--num_frames", type=int, default=None, help="Frames per video (default: the model's)"
    )
    parser.add_argument(
        "--dynamic_frames", action="store_true", help="Let the video graph take any number of frames"
    )
    parser.add_argument("--overwrite", action="store_true", help="Replace an earlier export in --output_dir")
    args = parser.parse_args()
    export = export_onnx(
        args.model,
        args.output_dir,
        num_frames=args.num_frames,
        dynamic_frames=args.dynamic_frames,
        overwrite=args.overwrite,
    )
    metadata = json.loads(export.metadata.read_text())
    for tower in ("video_tower", "text_tower"):
        graph = metadata[tower]
        shapes = ", ".join(f"{value['name']} {value['shape']}" for value in graph["inputs"])
        difference = metadata["verification"]["max_abs_difference"][tower]
        print(
            f"{export.folder / graph['file']}: {shapes}; opset {graph['opset']}; max |ONNX - PyTorch| {difference:.2g}"
        )


if __name__ == "__main__":
    main()
