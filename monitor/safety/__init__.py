"""Safety metrics: toxicity, sentiment, group disparity and counterfactual bias probes.

Pure library code (arrays in, frozen dataclasses out); the metrics pipeline wires it to storage.
Heavy backends (transformers, detoxify) are imported only when asked for.
"""

from monitor.safety.disparity import (
    DisparityConfig,
    DisparityReport,
    GroupStat,
    MetricDisparity,
    disparity_report,
    mean_disparity,
    rate_disparity,
)
from monitor.safety.generators import GenerationError, local_generator, openai_compatible_generator
from monitor.safety.probe_set import Probe, ProbeSet, load_probe_set
from monitor.safety.probes import (
    AxisProbeResult,
    GapEstimate,
    GroupProbeStat,
    ProbeCompletion,
    ProbeReport,
    run_probes,
)
from monitor.safety.sentiment import vader_compound
from monitor.safety.toxicity import (
    DEFAULT_TOXICITY_SCORER,
    DEFAULT_TOXICITY_THRESHOLD,
    PROFANITY_SCORER,
    PROFANITY_TOXICITY_THRESHOLD,
    DetoxifyScorer,
    ProfanityScorer,
    ToxicityScorer,
    ToxicitySummary,
    get_scorer,
    threshold_for,
    toxicity_summary,
)

__all__ = [
    "DEFAULT_TOXICITY_SCORER",
    "DEFAULT_TOXICITY_THRESHOLD",
    "PROFANITY_SCORER",
    "PROFANITY_TOXICITY_THRESHOLD",
    "AxisProbeResult",
    "DetoxifyScorer",
    "DisparityConfig",
    "DisparityReport",
    "GapEstimate",
    "GenerationError",
    "GroupProbeStat",
    "GroupStat",
    "MetricDisparity",
    "Probe",
    "ProbeCompletion",
    "ProbeReport",
    "ProbeSet",
    "ProfanityScorer",
    "ToxicityScorer",
    "ToxicitySummary",
    "disparity_report",
    "get_scorer",
    "load_probe_set",
    "local_generator",
    "mean_disparity",
    "openai_compatible_generator",
    "rate_disparity",
    "run_probes",
    "threshold_for",
    "toxicity_summary",
    "vader_compound",
]
