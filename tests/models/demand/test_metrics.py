from __future__ import annotations

import math

import numpy as np
import pytest

from pamtalk.models.demand.baselines import moving_average, seasonal_naive
from pamtalk.models.demand.evaluate import (
    coverage,
    mase,
    pinball,
    score_by_crop,
    seasonal_scale,
    wape,
    weighted_quantile_loss,
)


def test_pinball() -> None:
    actual = np.array([10.0, 10.0])
    assert pinball(actual, np.array([8.0, 12.0]), 0.9).tolist() == pytest.approx([1.8, 0.2])
    assert pinball(actual, np.array([8.0, 12.0]), 0.1).tolist() == pytest.approx([0.2, 1.8])


def test_seasonal_scale_and_mase() -> None:
    # Series 0 alternates weekly 0 / 7: every lag-7 difference is 7. Series 1 is all zero.
    train = np.array([[0.0] * 7 + [7.0] * 7 + [0.0] * 7, [0.0] * 21])
    scale = seasonal_scale(train)
    assert scale.tolist() == [7.0, 0.0]
    actual = np.array([[1.0, 2.0, 3.0], [0.0, 5.0, 0.0]])
    forecast = np.array([[2.0, 2.0, 1.0], [0.0, 0.0, 0.0]])
    value, skipped = mase(actual, forecast, scale)
    assert value == pytest.approx(1.0 / 7.0)  # MAE 1 over scale 7; series 1 skipped
    assert skipped == 1
    assert math.isnan(mase(actual, forecast, np.zeros(2))[0])


def test_wape_wql_coverage() -> None:
    actual = np.array([[10.0, 0.0, 30.0]])
    p50 = np.array([[12.0, 1.0, 27.0]])
    assert wape(actual, p50) == pytest.approx(6.0 / 40.0)
    quantiles = np.stack([p50 - 2, p50, p50 + 2], axis=2)  # [1, 3, 3]
    # tau 0.1, q=[10,-1,25]: 0 + 0.1*1 + 0.1*5 = 0.6 (all actuals at or above q);
    # tau 0.5: 0.5 * (2+1+3) = 3.0; tau 0.9, q=[14,3,29]: 0.1*4 + 0.1*3 + 0.9*1 = 1.6.
    # wQL = mean over tau of 2 * loss / sum|y| (= 40).
    assert weighted_quantile_loss(actual, quantiles) == pytest.approx(
        np.mean([2 * 0.6 / 40, 2 * 3.0 / 40, 2 * 1.6 / 40])
    )
    # [10, 14] holds 10, [-1, 3] holds 0, [25, 29] misses 30.
    assert coverage(actual, quantiles[..., 0], quantiles[..., 2]) == pytest.approx(2 / 3)
    assert math.isnan(wape(np.zeros((1, 3)), p50))


def test_score_by_crop() -> None:
    actual = np.array([[1.0, 1.0], [2.0, 2.0], [4.0, 4.0]])
    quantiles = np.repeat(actual[:, :, None], 3, axis=2)
    scores = score_by_crop(actual, quantiles, np.ones(3), ["b", "a", "b"])
    assert list(scores) == ["a", "b", "overall"]
    assert scores["b"].n_series == 2 and scores["overall"].mase == 0.0
    assert scores["overall"].coverage == 1.0


def test_baselines() -> None:
    week = np.array([5.0, 6.0, 7.0, 8.0, 9.0, 4.0, 0.0])
    demand = np.tile(week, 8)
    history = np.stack([demand, np.full(56, 1000.0)], axis=1)[None].astype(np.float32)
    calendar = np.zeros((1, 84, 13), np.float32)
    naive = seasonal_naive(history, calendar)
    assert naive.shape == (1, 28, 3)
    assert np.array_equal(naive[0, :, 1], np.tile(week, 4))
    assert np.array_equal(naive[0, :, 0], naive[0, :, 2])  # a perfectly weekly past: no band
    flat = moving_average(history, calendar)
    assert np.allclose(flat[0, :, 1], week.mean())
    assert (flat[0, :, 0] <= flat[0, :, 1]).all() and (flat[0, :, 1] <= flat[0, :, 2]).all()
    assert (flat >= 0).all()
