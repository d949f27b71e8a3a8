"""Reports: the numbers behind each figure, the figures (matplotlib, Agg), one HTML file."""

from embedrec.reports.build import build_report

__all__ = ["build_report"]
