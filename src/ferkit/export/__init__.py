"""Export workflows: fp32/fp16 files with their model card, ONNX, int8 calibration, each
checked for accuracy before it is written."""
