"""Device discovery and ONNX Runtime sessions on the best device present (DESIGN.md)."""
