"""Where a version's ONNX files are stored and the SHA-256 tags they are checked against:
publishing writes them, serving refuses a download that differs."""

from __future__ import annotations

import hashlib
from pathlib import Path

INT8_ARTIFACT = "onnx/model.int8.onnx"
# SHA-256 of the ONNX files as stored: serving refuses a version whose download differs.
FP32_DIGEST_TAG = "onnx_sha256"  # a tag of the model version
INT8_DIGEST_TAG = "int8_sha256"  # a tag of its run


def file_digest(path: Path) -> str:
    with path.open("rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()
