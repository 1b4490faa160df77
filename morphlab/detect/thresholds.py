"""Where a model's threshold came from: the records of ``metadata["threshold"]``."""

from __future__ import annotations

from typing import Any, Optional

from morphlab.metrics.intervals import rate

#: ``metadata["threshold"]["source"]`` of a model's threshold: the D-EER point of its own
#: training scores (:func:`train_detector`), or set on held-out data (:func:`calibrate_detector`).
TRAINING_DEER, CALIBRATED = "training D-EER", "calibrated"


def _pct_text(x: float) -> str:
    return f"{100 * x:g} %"


def threshold_origin(metadata: Optional[dict[str, Any]]) -> str:
    """Where a model's threshold came from, in one line (from its ``metadata_``)."""
    th = (metadata or {}).get("threshold")
    if not isinstance(th, dict) or th.get("source") not in (TRAINING_DEER, CALIBRATED):
        return "D-EER point of its training scores (the model records no origin)"
    if th["source"] == TRAINING_DEER:
        return (f"D-EER point of its own training scores ({th.get('n_bona_fide', '?')} bona fide / "
                f"{th.get('n_attack', '?')} attacks); not calibrated on held-out data — "
                "`morphlab detect calibrate` sets one that transfers")
    ach = th.get("achieved") or {}
    got = ", ".join(f"{k} {rate(v['k'], v['n']).format()}" for k, v in ach.items()
                    if isinstance(v, dict) and {"rate", "k", "n"} <= set(v))
    return (f"calibrated at {th.get('operating_point', '?')} on {th.get('n_bona_fide', '?')} bona fide / "
            f"{th.get('n_attack', '?')} attacks of {len(th.get('subjects') or [])} held-out identities"
            + (f" (there: {got})" if got else ""))
