"""Training: the shared loop, ONNX export, quantization and parity checks, the pipelines."""
