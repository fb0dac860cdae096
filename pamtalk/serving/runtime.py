"""The model runtime interface (after MLServer's: load, predict, unload, ready, name,
version) and its ONNX Runtime implementation. Both serving backends run models through it:
in this process (deployment.LocalBackend) and in Ray Serve replicas (ray_backend)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np
import onnxruntime as ort

from pamtalk.errors import InvalidInput
from pamtalk.gpu import session as ort_session
from pamtalk.gpu.providers import Device
from pamtalk.models.contract import ModelContract, TensorSpec


class ModelRuntime(Protocol):
    name: str
    version: str

    @property
    def ready(self) -> bool: ...
    @property
    def device(self) -> str: ...
    def load(self) -> None: ...
    def predict(self, inputs: Sequence[np.ndarray]) -> list[np.ndarray]: ...
    def unload(self) -> None: ...


@dataclass(frozen=True)
class Artifact:
    """One registered version as serving loads it."""

    name: str
    version: str
    path: Path
    precision: str  # "fp32" or "int8"


def check_inputs(contract: ModelContract, inputs: Sequence[np.ndarray]) -> int:
    """The batch size of ``inputs`` if they fit the contract; InvalidInput saying what does
    not otherwise. Run before a request joins a batch, so one bad request fails alone."""
    if len(inputs) != len(contract.inputs):
        raise InvalidInput(
            f"{contract.registered_name} takes {len(contract.inputs)} inputs "
            f"({', '.join(s.name for s in contract.inputs)}), got {len(inputs)}"
        )
    rows = {array.shape[0] if array.ndim else -1 for array in inputs}
    if len(rows) != 1:
        raise InvalidInput("inputs disagree on the batch size (first dimension)")
    for spec, array in zip(contract.inputs, inputs, strict=True):
        _check(spec, array)
    (batch,) = rows
    if batch < 1:
        raise InvalidInput("a request needs at least one row")
    return batch


def _check(spec: TensorSpec, array: np.ndarray) -> None:
    if array.dtype != np.dtype(spec.dtype):
        raise InvalidInput(f"input {spec.name} must be {spec.dtype}, got {array.dtype}")
    expected = spec.shape[1:]
    if array.ndim != len(spec.shape) or tuple(array.shape[1:]) != expected:
        want = ", ".join(["N", *(str(d) for d in expected)])
        raise InvalidInput(f"input {spec.name} must have shape [{want}], got {list(array.shape)}")
    if not np.isfinite(array).all():
        raise InvalidInput(f"input {spec.name} has NaN or infinite values")


class OnnxModel:
    """One model version in an ONNX Runtime session on the chosen device; implements
    ModelRuntime."""

    def __init__(
        self,
        artifact: Artifact,
        contract: ModelContract,
        device: Device = "auto",
        threads: int = 0,
        warmup_batches: Iterable[int] = (1,),
    ) -> None:
        self.name, self.version = artifact.name, artifact.version
        self.artifact, self.contract = artifact, contract
        self._device, self._threads = device, threads
        self._warmup_batches = tuple(warmup_batches)
        self._session: ort.InferenceSession | None = None
        self._on_gpu = False
        self._inputs = [s.name for s in contract.inputs]
        self._outputs = [s.name for s in contract.outputs]

    @property
    def ready(self) -> bool:
        return self._session is not None

    @property
    def device(self) -> str:
        return ort_session.device_of(self._session) if self._session else "unloaded"

    def load(self) -> None:
        session = ort_session.open_session(self.artifact.path, self._device, self._threads)
        found = [i.name for i in session.get_inputs()], [o.name for o in session.get_outputs()]
        if found != (self._inputs, self._outputs):
            raise RuntimeError(
                f"{self.name} v{self.version} has tensors {found[0]} -> {found[1]}; "
                f"the contract says {self._inputs} -> {self._outputs}"
            )
        self._session, self._on_gpu = session, ort_session.on_gpu(session)
        # The first run of a shape allocates memory and, on a GPU, picks kernels (TensorRT
        # builds an engine): no request should wait for that.
        for batch in sorted(set(self._warmup_batches)):
            outputs = self.predict(ort_session.example_inputs(session, batch))
            if not all(np.isfinite(output).all() for output in outputs):
                raise RuntimeError(f"{self.name} v{self.version} gave non-finite warm-up outputs")

    def predict(self, inputs: Sequence[np.ndarray]) -> list[np.ndarray]:
        session = self._session
        if session is None:
            raise RuntimeError(f"{self.name} v{self.version} is not loaded")
        rows = inputs[0].shape[0]
        if rows == 1:
            # ONNX Runtime's CPU kernels take another path for one row (a matrix-vector
            # product) whose float32 sums differ in the last bits from any larger batch:
            # measured on the demand network, 1,853 of 10,920 values changed. Running a
            # lone row as two keeps its answer the same alone, batched online, or nightly.
            inputs = [np.concatenate([array, array]) for array in inputs]
        feeds = dict(zip(self._inputs, inputs, strict=True))
        if self._on_gpu:
            outputs = ort_session.run_bound(session, feeds, self._outputs)
        else:
            outputs = session.run(self._outputs, feeds)
        return [output[:rows] for output in outputs] if rows == 1 else list(outputs)

    def unload(self) -> None:
        self._session = None


def load_runtime(
    artifact: Artifact,
    contract: ModelContract,
    device: Device,
    threads: int,
    warmup_batches: Iterable[int],
) -> ModelRuntime:
    """The runtime that serves ``artifact``, loaded and warmed up: every backend's one way
    to get one."""
    model = OnnxModel(artifact, contract, device, threads, warmup_batches)
    model.load()
    return model
