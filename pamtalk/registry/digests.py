"""Where a version's ONNX files are stored and the SHA-256 tags they are checked against:
publishing writes them, serving refuses a download that differs."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from pathlib import Path

from pamtalk.training import quantize

INT8_ARTIFACT = "onnx/model.int8.onnx"
# SHA-256 of the ONNX files as stored: serving refuses a version whose download differs.
FP32_DIGEST_TAG = "onnx_sha256"  # a tag of the model version
INT8_DIGEST_TAG = "int8_sha256"  # a tag of its run
# How the run's int8 file was quantized (training.quantize.SCHEME). Serving takes only the
# static scheme: runs without the tag hold dynamic int8, whose answers depend on the batch.
INT8_SCHEME_TAG = "int8_scheme"


def file_digest(path: Path) -> str:
    with path.open("rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def int8_servable(run_tags: Mapping[str, str]) -> bool:
    """Whether a run's int8 file passed its gate (tag int8=yes) and is static, so that a
    row's answer does not depend on its batch."""
    return run_tags.get("int8") == "yes" and run_tags.get(INT8_SCHEME_TAG) == quantize.SCHEME
