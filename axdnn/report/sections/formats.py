"""Report section of `formats` steps: a number-format sweep has the records of an evaluate step
(one run per format, float first), so it is shown the same way."""

from __future__ import annotations

from axdnn.report.html import register_section
from axdnn.report.sections.evaluate import render

register_section("formats")(render)
