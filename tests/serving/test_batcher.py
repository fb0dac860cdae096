"""The dynamic batcher: every caller gets its own rows back, whatever the interleaving;
failures, deadlines and a full queue reach each caller as a clear error."""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from onnx import TensorProto, helper

from pamtalk.errors import GatewayTimeout, TooManyRequests
from pamtalk.gpu.session import open_session
from pamtalk.serving import deadline
from pamtalk.serving.batcher import BatchPolicy, DynamicBatcher, InferenceFailed


@pytest.fixture(scope="module")
def doubling_model(tmp_path_factory: pytest.TempPathFactory) -> ort.InferenceSession:
    """A real ONNX Runtime session of y = 2x over [N, 3]: each output row is its input's."""
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 3])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 3])
    two = helper.make_tensor("two", TensorProto.FLOAT, [1], [2.0])
    graph = helper.make_graph(
        [helper.make_node("Mul", ["x", "two"], ["y"])], "double", [x], [y], [two]
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    path = Path(tmp_path_factory.mktemp("onnx")) / "double.onnx"
    onnx.save(model, str(path))
    return open_session(path, device="cpu", threads=1)


def on_threads(session: ort.InferenceSession, pool: ThreadPoolExecutor):  # type: ignore[no-untyped-def]
    async def run(inputs: list[np.ndarray]) -> list[np.ndarray]:
        def double(x: np.ndarray) -> list[np.ndarray]:
            outputs: list[np.ndarray] = session.run(None, {"x": x})
            return outputs

        return await asyncio.get_running_loop().run_in_executor(pool, double, inputs[0])

    return run


requests = st.lists(
    st.tuples(st.integers(1, 6), st.floats(0, 0.003)),  # (rows, arrival delay in s)
    min_size=1,
    max_size=40,
)


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    requests=requests,
    max_batch=st.integers(1, 16),
    parallelism=st.integers(1, 3),
    max_wait=st.sampled_from([0.0, 0.001, 0.005]),
)
def test_any_interleaving_returns_each_caller_its_own_rows(
    doubling_model: ort.InferenceSession,
    requests: list[tuple[int, float]],
    max_batch: int,
    parallelism: int,
    max_wait: float,
) -> None:
    policy = BatchPolicy(max_batch, max_wait, max_queue_rows=10_000, parallelism=parallelism)

    async def scenario() -> None:
        with ThreadPoolExecutor(parallelism) as pool:
            batcher = DynamicBatcher(on_threads(doubling_model, pool), "double", "1", policy)

            async def call(i: int, rows: int, delay: float) -> None:
                await asyncio.sleep(delay)
                x = np.arange(rows * 3, dtype=np.float32).reshape(rows, 3) + 1000 * i
                (y,) = await batcher.submit([x], rows)
                np.testing.assert_array_equal(y, 2 * x)

            await asyncio.gather(*(call(i, r, d) for i, (r, d) in enumerate(requests)))
            await batcher.close()

    asyncio.run(scenario())


async def test_an_idle_model_is_not_held_for_the_window(
    doubling_model: ort.InferenceSession,
) -> None:
    # A one-minute window and a five-second deadline: only an immediate dispatch answers.
    policy = BatchPolicy(max_batch_size=64, max_wait=60.0, parallelism=1, timeout=5.0)
    with ThreadPoolExecutor(1) as pool:
        batcher = DynamicBatcher(on_threads(doubling_model, pool), "double", "1", policy)
        (y,) = await batcher.submit([np.ones((1, 3), np.float32)], 1)
        assert y.tolist() == [[2.0, 2.0, 2.0]]
        await batcher.close()


async def test_a_failing_batch_fails_each_of_its_callers() -> None:
    async def broken(inputs: list[np.ndarray]) -> list[np.ndarray]:
        await asyncio.sleep(0.01)
        raise RuntimeError("CUDA out of memory")

    batcher = DynamicBatcher(broken, "m", "3", BatchPolicy(max_batch_size=8, parallelism=1))
    calls = [batcher.submit([np.ones((1, 3), np.float32)], 1) for _ in range(5)]
    results = await asyncio.gather(*calls, return_exceptions=True)
    assert all(isinstance(r, InferenceFailed) for r in results)
    # The runtime's own text stays out of the message (callers see it) and in the cause.
    first = results[0]
    assert isinstance(first, InferenceFailed)
    assert "m v3 failed on a batch" in str(first) and "CUDA" not in str(first)
    assert "CUDA out of memory" in str(first.__cause__)
    await batcher.close()


async def test_output_length_is_checked_against_input_length() -> None:
    async def drops_a_row(inputs: list[np.ndarray]) -> list[np.ndarray]:
        return [inputs[0][1:]]

    batcher = DynamicBatcher(drops_a_row, "m", "1", BatchPolicy())
    with pytest.raises(InferenceFailed, match="m v1 failed on a batch of 2 rows") as failed:
        await batcher.submit([np.ones((2, 3), np.float32)], 2)
    assert "returned 1 rows for 2" in str(failed.value.__cause__)
    await batcher.close()


async def test_a_full_queue_is_429_and_a_missed_deadline_504() -> None:
    release = asyncio.Event()

    async def slow(inputs: list[np.ndarray]) -> list[np.ndarray]:
        await release.wait()
        return inputs

    policy = BatchPolicy(max_batch_size=1, max_queue_rows=3, parallelism=1, timeout=0.2)
    batcher = DynamicBatcher(slow, "m", "1", policy)
    row = [np.ones((1, 3), np.float32)]
    waiting = [asyncio.create_task(batcher.submit(row, 1))]
    await asyncio.sleep(0.01)  # the first is running; three more fill the queue
    waiting += [asyncio.create_task(batcher.submit(row, 1)) for _ in range(3)]
    await asyncio.sleep(0.01)
    with pytest.raises(TooManyRequests) as refused:
        await batcher.submit(row, 1)
    assert refused.value.headers is not None and int(refused.value.headers["Retry-After"]) >= 1
    results = await asyncio.gather(*waiting, return_exceptions=True)
    assert all(isinstance(r, GatewayTimeout) for r in results)
    release.set()
    # Timed-out requests are skipped, and the batcher serves again once the model is back.
    batcher.policy = BatchPolicy(max_batch_size=1, parallelism=1, timeout=5)
    (out,) = await batcher.submit(row, 1)
    assert out.shape == (1, 3)
    await batcher.close()


async def test_a_request_whose_deadline_passes_in_the_queue_is_dropped_before_compute() -> None:
    computed: list[int] = []

    async def slow(inputs: list[np.ndarray]) -> list[np.ndarray]:
        computed.append(inputs[0].shape[0])
        await asyncio.sleep(0.3)
        return [2 * inputs[0]]

    batcher = DynamicBatcher(slow, "m", "1", BatchPolicy(max_batch_size=1, parallelism=1))
    busy = asyncio.create_task(batcher.submit([np.ones((1, 3), np.float32)], 1))
    await asyncio.sleep(0.05)  # the model is busy with the first request
    token = deadline.start(0.05)  # the caller gives up after 50 ms (X-Request-Timeout)
    try:
        with pytest.raises(GatewayTimeout):
            await batcher.submit([np.zeros((1, 3), np.float32)], 1)
        expired = deadline.start(-1.0)  # already past: refused without queueing
        with pytest.raises(GatewayTimeout, match="deadline passed"):
            await batcher.submit([np.zeros((1, 3), np.float32)], 1)
        deadline.reset(expired)
    finally:
        deadline.reset(token)
    await busy
    await asyncio.sleep(0.1)
    assert computed == [1]  # only the first request ever reached the model
    await batcher.close()
