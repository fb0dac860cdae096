"""Online serving: model runtime, dynamic batcher, predictor service, version router, Open
Inference Protocol and the Ray Serve backend (DESIGN.md)."""
