"""How the ESG network is scored: against the methodology's score of each farm's complete
profile, whatever inputs the network was shown.

    cases = {"complete": Split(practices, mask, targets(farms)), ...}
    metrics = evaluator(cases)(predict)       # mae_<case>[_<score>], coverage_..., width_...
    print(format_table(metrics, n_farms=len(farms), missing=0.3))

``predict(practices, mask) -> [N, 4, 3]`` is any predictor: the torch network, an ONNX
Runtime session, a baseline.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from pamtalk.models.contract import ESG_SCORES
from pamtalk.models.esg import methodology, profiles

Predictor = Callable[[np.ndarray, np.ndarray], np.ndarray]
CHUNK = 1024  # rows per predict call


@dataclass(frozen=True)
class Split:
    """Encoded farms (inputs possibly hidden) and the scores of their complete profiles."""

    practices: np.ndarray  # [N, F]
    mask: np.ndarray  # [N, F]
    targets: np.ndarray  # [N, 4] methodology scores of the complete profile


def targets(farms: Sequence[profiles.Farm]) -> np.ndarray:
    """[N, 4] the methodology's E, S, G, overall for each farm."""
    rows = [methodology.assess(farm) for farm in farms]
    return np.array(
        [[a.environmental, a.social, a.governance, a.overall] for a in rows], dtype=np.float32
    )


def score_metrics(scores: np.ndarray, truth: np.ndarray, name: str) -> dict[str, float]:
    """MAE of the medians, p10..p90 coverage and mean band width; the unsuffixed keys are the
    overall score's. scores [N, 4, 3], truth [N, 4]."""
    p10, p50, p90 = scores[..., 0], scores[..., 1], scores[..., 2]  # [N, 4] each
    mae = np.abs(p50 - truth).mean(axis=0)  # [4]
    covered = ((p10 <= truth) & (truth <= p90)).mean(axis=0)  # [4]
    width = (p90 - p10).mean(axis=0)  # [4]
    out: dict[str, float] = {}
    for i, score in enumerate(ESG_SCORES):
        out[f"mae_{name}_{score}"] = float(mae[i])
        out[f"coverage_{name}_{score}"] = float(covered[i])
        out[f"width_{name}_{score}"] = float(width[i])
    out[f"mae_{name}"] = out[f"mae_{name}_overall"]
    out[f"coverage_{name}"] = out[f"coverage_{name}_overall"]
    out[f"width_{name}"] = out[f"width_{name}_overall"]
    grades = np.array([methodology.grade(float(v)) for v in p50[:, 3]])
    true_grades = np.array([methodology.grade(float(v)) for v in truth[:, 3]])
    out[f"grade_accuracy_{name}"] = float((grades == true_grades).mean())
    return out


def evaluator(cases: dict[str, Split]) -> Callable[[Predictor], dict[str, float]]:
    """evaluate(predict) -> score_metrics over every case."""

    def evaluate(predict: Predictor) -> dict[str, float]:
        metrics: dict[str, float] = {}
        for name, case in cases.items():
            chunks = [
                np.asarray(predict(case.practices[i : i + CHUNK], case.mask[i : i + CHUNK]))
                for i in range(0, len(case.targets), CHUNK)
            ]
            metrics |= score_metrics(np.concatenate(chunks), case.targets, name)
        return metrics

    return evaluate


def baselines(train: Split, complete: Split, audited: np.ndarray) -> dict[str, float]:
    """Reference points on the complete case: the training mean for everyone, and the
    methodology's own (audit) score ``audited`` [N, 4] of the profiles with 30 % of their
    practices missing, where missing inputs earn no points."""
    mean = train.targets.mean(axis=0)  # [4]
    truth = complete.targets
    out: dict[str, float] = {}
    for i, score in enumerate(ESG_SCORES):
        out[f"baseline_mean_mae_{score}"] = float(np.abs(truth[:, i] - mean[i]).mean())
        out[f"baseline_audit_missing30_mae_{score}"] = float(
            np.abs(truth[:, i] - audited[:, i]).mean()
        )
    return out


def format_table(metrics: dict[str, float], n_farms: int, missing: float) -> str:
    """The evaluation as text: per case (``missing``: the incomplete cases' missing rate),
    the baselines, and the training's time and epochs."""
    head = f"{'inputs':<40}" + "".join(f"{c[:13]:>14}" for c in ESG_SCORES)
    lines = [
        f"ESG model vs the methodology on {n_farms} generated farms "
        f"(MAE of p50 in points; coverage and width of the p10..p90 band)",
        head,
    ]
    labels = {
        "complete": "complete",
        "missing30": f"{missing:.0%} of practices missing",
        "missing30all": f"{missing:.0%} of all inputs missing",
    }
    for case, label in labels.items():
        for kind in ("mae", "coverage", "width"):
            values = "".join(f"{metrics[f'{kind}_{case}_{c}']:>14.3f}" for c in ESG_SCORES)
            lines.append(f"{label + ' ' + kind:<40}{values}")
        lines.append(f"{label + ' grade accuracy':<40}{metrics[f'grade_accuracy_{case}']:>56.3f}")
    for key, label in (
        ("baseline_mean_mae", "baseline: training mean, MAE"),
        ("baseline_audit_missing30_mae", "audit score, 30 % practices missing, MAE"),
    ):
        values = "".join(f"{metrics[f'{key}_{c}']:>14.3f}" for c in ESG_SCORES)
        lines.append(f"{label:<40}{values}")
    lines.append(
        f"training: {metrics['train_seconds']:.1f} s, best epoch "
        f"{int(metrics['train_best_epoch']) + 1} of {int(metrics['train_epochs_run'])}"
    )
    return "\n".join(lines)
