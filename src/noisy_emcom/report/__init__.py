"""Report stage: tables, figures and the claims check from the tidy per-run results.

    from noisy_emcom.report import ReportInputs, build_report, expected_outputs
    build_report(ReportInputs(tests=[...], measures=[...]), "results/report")

Modules: ``io`` (reading the per-run files), ``aggregate`` (run-level values,
mean ± std over seeds), ``tables`` (paper-style tables as CSV, Markdown, LaTeX), ``figures``
(seaborn/matplotlib, PNG and SVG), ``claims`` (the paper's claims, docs/science.md#claims),
``build`` (the whole stage, including the page ``results.md``).
Nothing here imports JAX.
"""

from noisy_emcom.report.build import (
    MANIFEST,
    RESULTS_PAGE,
    ReportInputs,
    ReportOptions,
    build_report,
    expected_outputs,
    load_inputs,
)
from noisy_emcom.report.io import ReportInputError

__all__ = [
    "MANIFEST",
    "RESULTS_PAGE",
    "ReportInputs",
    "ReportOptions",
    "ReportInputError",
    "build_report",
    "expected_outputs",
    "load_inputs",
]
