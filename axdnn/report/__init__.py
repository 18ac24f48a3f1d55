"""Reports and plots built from records: `build_report(run_dir)` writes one self-contained HTML
page for a run folder; each step kind's section lives in its own `axdnn.report.sections` module,
registered with `register_section(kind)`."""

from axdnn.report import sections as _sections  # noqa: F401  (registers the sections)
from axdnn.report.html import (
    ReportContext,
    Section,
    build_report,
    register_section,
    registered_kinds,
    render_report,
)

__all__ = [
    "ReportContext",
    "Section",
    "build_report",
    "register_section",
    "registered_kinds",
    "render_report",
]
