"""Reports that explain a model's math: summary, explain and gradient_flow.

Each returns a report object that prints as an aligned plain-text table,
renders as an HTML table in Jupyter and converts to a dict with to_dict().
"""

from glassnet.reports.explain import ExplainReport, explain
from glassnet.reports.flow import GradientFlowReport, gradient_flow
from glassnet.reports.summary import SummaryReport, summary

__all__ = [
    "ExplainReport",
    "GradientFlowReport",
    "SummaryReport",
    "explain",
    "gradient_flow",
    "summary",
]
