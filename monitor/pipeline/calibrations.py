"""Drift calibrations stored with their reference: computed once per reference, read by every window.

The calibration (monitor/drift/thresholds.py) is a function of the reference rows, the seed and a few
settings; its key hashes all of them. A window looks the key up and computes the calibration only when no
row has it, so a recomputed window reads the very row its first computation wrote (identical verdicts), and
a changed reference (pinned range edited, promotion, new first-N events) has a new key and recalibrates.
"""

from __future__ import annotations

import hashlib
from datetime import datetime
from typing import Any

import numpy as np
from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from monitor.db import utcnow
from monitor.drift.thresholds import CALIBRATED_METHODS, Calibration, calibrate_methods
from monitor.encoding import json_safe
from monitor.pipeline.config import ProjectConfig
from monitor.pipeline.models import DriftCalibration


def window_bucket(n_window: int) -> int:
    """Window sizes rounded to a power of two, so windows of similar size share one calibration."""
    return int(2 ** round(float(np.log2(max(n_window, 1)))))


def reference_key(ref_ids: np.ndarray, *, model_key: str, seed: int, cfg: ProjectConfig, window_size: int) -> str:
    h = hashlib.sha1(np.ascontiguousarray(ref_ids, dtype=np.int64).tobytes())
    h.update(f"|{model_key}|{seed}|{cfg.drift_calibration_blocks}|{cfg.drift_alpha}|{window_size}".encode())
    return h.hexdigest()


def reference_calibrations(
    session: Session, cfg: ProjectConfig, *, project_id: int, segment: str, field: str, ref_ids: np.ndarray,
    ref: np.ndarray, n_window: int, seed: int, model_key: str, runs: int | None = None,
) -> dict[str, tuple[Calibration, str]]:
    """Calibration (and its computed_at, ISO) of each calibrated drift method for this reference: read from
    `drift_calibrations`, computed and stored when missing. Empty when `drift_min_effect` fixes the floor.

    `runs`: the reference rows are `runs` runs of consecutive events (`run_sample`), None when they are all of it."""
    methods = tuple(m for m in cfg.drift_methods if m in CALIBRATED_METHODS)
    if not methods or cfg.drift_min_effect is not None:
        return {}
    window_size = window_bucket(n_window)
    key = reference_key(ref_ids, model_key=model_key, seed=seed, cfg=cfg, window_size=window_size)
    out = {m: (Calibration.from_dict(c), at.isoformat()) for m, c, at in _stored(session, project_id, segment, field,
                                                                                  key, methods)}
    missing = tuple(m for m in methods if m not in out)
    if missing:
        cals = calibrate_methods(ref, missing, seed=seed, window_size=window_size, alpha=cfg.drift_alpha,
                                 n_blocks=cfg.drift_calibration_blocks, runs=runs)
        now = utcnow()
        rows = [{"project_id": project_id, "segment": segment, "field": field, "method": m, "reference_key": key,
                 "n_reference": cal.n_reference, "lam": cal.lam, "source": cal.source,
                 "calibration": json_safe(cal.to_dict()), "computed_at": now} for m, cal in cals.items()]
        dialect = session.get_bind().dialect.name
        ins = pg_insert(DriftCalibration) if dialect == "postgresql" else sqlite_insert(DriftCalibration)
        # A concurrent worker may have stored the same (deterministic) calibration first: keep its row.
        session.execute(ins.on_conflict_do_nothing(
            index_elements=["project_id", "segment", "field", "method", "reference_key"]), rows)
        out.update({m: (Calibration.from_dict(c), at.isoformat())
                    for m, c, at in _stored(session, project_id, segment, field, key, missing)})
    return out


def _stored(session: Session, project_id: int, segment: str, field: str, key: str,
            methods: tuple[str, ...]) -> list[tuple[str, dict[str, Any], datetime]]:
    rows = session.execute(
        select(DriftCalibration.method, DriftCalibration.calibration, DriftCalibration.computed_at).where(
            DriftCalibration.project_id == project_id, DriftCalibration.segment == segment,
            DriftCalibration.field == field, DriftCalibration.reference_key == key,
            DriftCalibration.method.in_(methods))).all()
    return [(m, c, at) for m, c, at in rows]
