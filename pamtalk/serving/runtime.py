"""The model runtime interface (after MLServer's: load, predict, unload, ready, name,
version) and its ONNX Runtime implementation."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np

from pamtalk.errors import InvalidInput
from pamtalk.gpu.providers import Device
from pamtalk.gpu.session import Session
from pamtalk.models.contract import ModelContract, TensorSpec


class ModelRuntime(Protocol):
    name: str
    version: str

    @property
    def ready(self) -> bool: ...
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
    """One model version in an ONNX Runtime session on the chosen device."""

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
        self._session: Session | None = None

    @property
    def ready(self) -> bool:
        return self._session is not None

    @property
    def device(self) -> str:
        return self._session.device if self._session else "unloaded"

    def load(self) -> None:
        session = Session(self.artifact.path, self._device, self._threads)
        names = [s.name for s in self.contract.inputs], [s.name for s in self.contract.outputs]
        if (session.input_names, session.output_names) != names:
            raise RuntimeError(
                f"{self.name} v{self.version} has tensors {session.input_names} -> "
                f"{session.output_names}; the contract says {names[0]} -> {names[1]}"
            )
        session.warm_up(self._warmup_batches)
        self._session = session

    def predict(self, inputs: Sequence[np.ndarray]) -> list[np.ndarray]:
        if self._session is None:
            raise RuntimeError(f"{self.name} v{self.version} is not loaded")
        return self._session.run(inputs)

    def unload(self) -> None:
        self._session = None
