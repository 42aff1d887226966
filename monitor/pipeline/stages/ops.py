"""Stage `ops`: volume, errors, latency percentiles, tokens and feedback per segment."""

from __future__ import annotations

from sqlalchemy.orm import Session

from monitor.pipeline.context import WindowContext
from monitor.pipeline.ops import feedback_metrics, ops_metrics
from monitor.pipeline.segments import segment_masks
from monitor.pipeline.store import upsert_points
from monitor.pipeline.window_data import feedback_positive, load_window


def compute_ops(session: Session, ctx: WindowContext) -> int:
    cfg = ctx.config
    frame = load_window(session, ctx.project.id, ctx.window_start, ctx.window_end)
    fb_pos, fb_positive = feedback_positive(session, ctx.project.id, frame, cfg)
    written = 0
    for segment, mask in segment_masks(frame.segments, cfg.segment_keys, cfg.max_segment_values).items():
        points = ops_metrics(
            frame.latency_ms[mask], frame.has_error[mask], frame.prompt_tokens[mask], frame.completion_tokens[mask],
            min_samples=cfg.min_samples,
        )
        points += feedback_metrics(fb_positive[mask[fb_pos]] if fb_pos.size else fb_positive,
                                   min_samples=cfg.min_samples)
        written += upsert_points(session, ctx.project.id, segment, ctx.window_start, ctx.window_end, points)
    return written
