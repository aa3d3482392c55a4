"""A trained model and its forms: ``FerModel`` (network, normaliser, metadata), its
safetensors file, the int8 and ONNX forms, its temperature and the paper's test views."""
