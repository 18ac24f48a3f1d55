"""The HTML report of a run folder, built from its JSON records alone: self-contained, one section
per step in run order, every figure with a table of its numbers, unfinished steps and unknown
kinds shown rather than failing, every record string escaped."""

from __future__ import annotations

import json
import re
import shutil
from html.parser import HTMLParser
from pathlib import Path

import pytest

import axdnn
from axdnn.arith import get_multiplier
from axdnn.errors import ConfigError
from axdnn.report import (
    ReportContext,
    Section,
    build_report,
    register_section,
    registered_kinds,
    render_report,
)
from axdnn.report import html as report_html
from axdnn.report.sections.multipliers import multiplier_error_summary

KINDS = (
    "train", "evaluate", "cost", "multipliers", "finetune", "resilience", "significance",
    "formats", "selection", "prune", "share", "explore", "dynamic", "regions", "redcane",
)  # fmt: skip
# the figures each section draws on the fixture run (each with its own table)
FIGURES = {
    "train": 1,
    "evaluate": 2,
    "cost": 1,
    "multipliers": 2,
    "finetune": 1,
    "resilience": 3,
    "significance": 2,
    "formats": 2,
    "share": 1,
    "explore": 1,
    "dynamic": 2,
    "regions": 1,
    "redcane": 1,
}
NUMBER = re.compile(r"^[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?$")


class Page(HTMLParser):
    """The parts of a report page the tests look at: contents links, sections (id, kind,
    status, text), figures (svg count, numeric table cells) and every URL-bearing attribute."""

    def __init__(self, text: str):
        super().__init__(convert_charrefs=True)
        self.links: list[str] = []
        self.sections: list[dict] = []
        self.figures: list[dict] = []
        self.urls: list[tuple[str, str, str]] = []
        self.tags: set[str] = set()
        self._nav = self._cell = False
        self._figure: dict | None = None
        self._cell_text = ""
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        self.tags.add(tag)
        for key in ("src", "href", "xlink:href", "action", "srcset"):
            if key in attrs:
                self.urls.append((tag, key, attrs[key] or ""))
        if tag == "nav" and attrs.get("id") == "contents":
            self._nav = True
        elif tag == "a" and self._nav:
            self.links.append(attrs.get("href", ""))
        elif tag == "section":
            self.sections.append({**attrs, "text": ""})
        elif tag == "figure":
            self._figure = {"svg": 0, "tables": 0, "numbers": 0, "section": self.sections[-1]}
        elif self._figure is not None and tag == "svg":
            self._figure["svg"] += 1
        elif self._figure is not None and tag == "table":
            self._figure["tables"] += 1
        elif tag == "td":
            self._cell, self._cell_text = True, ""

    def handle_endtag(self, tag):
        if tag == "nav":
            self._nav = False
        elif tag == "figure" and self._figure is not None:
            self.figures.append(self._figure)
            self._figure = None
        elif tag == "td" and self._cell:
            self._cell = False
            if self._figure is not None and NUMBER.match(self._cell_text.strip()):
                self._figure["numbers"] += 1

    def handle_data(self, data):
        if self._cell:
            self._cell_text += data
        if self.sections:
            self.sections[-1]["text"] += data


@pytest.fixture(scope="module")
def page(run_folder) -> tuple[str, Page]:
    out = build_report(run_folder)
    assert out == run_folder / "report.html"
    text = out.read_text(encoding="utf-8")
    return text, Page(text)


def _copy(run_folder: Path, tmp_path: Path, keep: tuple[str, ...]) -> tuple[Path, dict]:
    """A copy of the run folder's records (no per-step files) keeping only the steps `keep`."""
    run = tmp_path / "run"
    (run / "steps").mkdir(parents=True)
    for name in keep:
        shutil.copy(run_folder / "steps" / f"{name}.json", run / "steps" / f"{name}.json")
    meta = json.loads((run_folder / "experiment.json").read_text())
    meta["steps"] = [s for s in meta["steps"] if s["name"] in keep]
    return run, meta


def _save(run: Path, meta: dict) -> None:
    (run / "experiment.json").write_text(json.dumps(meta))


def test_every_step_kind_has_a_registered_section():
    from axdnn.experiment.schema import STEP_KINDS, experiment_model

    experiment_model()  # registers the built-in kinds
    assert set(KINDS) == set(STEP_KINDS) and set(STEP_KINDS) <= set(registered_kinds())


def test_report_is_self_contained(page):
    text, parsed = page
    for needle in ("http://", "https://", 'src="/', "<link", "file://", "@import"):
        assert needle not in text
    assert not {"link", "iframe", "object", "embed"} & parsed.tags
    for tag, attr, url in parsed.urls:  # only in-page anchors and inline data
        assert url.startswith(("#", "data:")), (tag, attr, url[:80])
    assert "<style>" in text and "<svg" in text


def test_header_names_experiment_version_machine_and_seed(page, run_folder):
    text, _ = page
    meta = json.loads((run_folder / "experiment.json").read_text())
    header = text.split("</header>")[0]
    assert "digits &lt;study&gt; &amp; co" in header  # the experiment's name, escaped
    assert axdnn.__version__ in header
    assert meta["machine"]["torch"] in header and meta["machine"]["platform"] in header
    assert meta["started"] in header and meta["finished"] in header
    assert re.search(r"<th>seed</th><td[^>]*>0</td>", header)


def test_contents_list_every_step_in_run_order(page, run_folder):
    _, parsed = page
    meta = json.loads((run_folder / "experiment.json").read_text())
    ids = [s["id"] for s in parsed.sections]
    assert parsed.links == [f"#{i}" for i in ids]
    assert [s["data-kind"] for s in parsed.sections] == [s["kind"] for s in meta["steps"]]
    assert [s["data-kind"] for s in parsed.sections] == list(KINDS)
    assert all(s["data-status"] == "ok" for s in parsed.sections)
    assert 'class="render-error"' not in page[0]


def test_every_figure_has_a_table_of_numbers(page):
    _, parsed = page
    assert parsed.figures
    for fig in parsed.figures:
        where = fig["section"]["data-kind"]
        assert fig["svg"] == 1, where
        assert fig["tables"] >= 1 and fig["numbers"] >= 3, where
    per_kind = {}
    for fig in parsed.figures:
        kind = fig["section"]["data-kind"]
        per_kind[kind] = per_kind.get(kind, 0) + 1
    assert per_kind == FIGURES


def test_sections_show_the_records_numbers(page, run_folder):
    """Spot checks that each section reports its record's own values."""
    _, parsed = page
    text = {s["data-kind"]: s["text"] for s in parsed.sections}

    def record(name):
        return json.loads((run_folder / "steps" / f"{name}.json").read_text())["record"]

    assert f"{100 * record('train')['test']['top1']:.2f}" in text["train"]
    for run in record("evaluate")["runs"]:
        assert run["label"] in text["evaluate"] and f"{100 * run['top1']:.2f}" in text["evaluate"]
    assert "accuracy against energy" in text["evaluate"] and "Pareto" in text["evaluate"]
    assert "Energy of the float run from" not in text["evaluate"]  # each run has its own
    assert str(record("cost")["cost"]["total_macs"]) in text["cost"]
    assert "drum:3" in text["multipliers"] and "mean error per block" in text["multipliers"]
    assert f"{100 * record('finetune')['after_top1']:.2f}" in text["finetune"]
    top = record("resilience")["sensitivity"]["ranking"][0]
    assert (
        top["site"] in text["resilience"] and f"{100 * top['score_low']:.2f}" in text["resilience"]
    )
    assert "critical rate" in text["resilience"]
    advantage = record("significance")["pruning"][0]["advantage"]
    assert f"{100 * advantage:.3g}" in text["significance"]


def test_report_is_deterministic(run_folder, tmp_path):
    """The same records give the same page, byte for byte (figure ids included)."""
    run, meta = _copy(run_folder, tmp_path, ("train", "multipliers"))
    _save(run, meta)
    first = render_report(run)
    assert first == render_report(run)
    assert len(re.findall(r'id="(f[0-9a-f]{8}-[^"]+)"', first)) > 10


def test_unfinished_unknown_and_hostile_steps(run_folder, tmp_path, write_step):
    """A record-less step is listed as not run; a kind without a renderer shows its record as a
    table; markup in names and record strings comes out escaped, never as tags."""
    run, meta = _copy(run_folder, tmp_path, ("train", "evaluate", "cost"))
    evaluate = json.loads((run / "steps" / "evaluate.json").read_text())
    evaluate["record"]["runs"][1]["label"] = '<img src=x onerror="alert(1)">'
    (run / "steps" / "evaluate.json").write_text(json.dumps(evaluate))
    hostile = "<script>alert('x')</script>"
    future = {
        "score": 0.125,
        "nested": {"curve": [1, 2, 3], "note": "<b>bold</b> & more"},
        "items": [{"a": 1}, {"a": 2}],
    }
    write_step(run, hostile, "future-thing", {"knob": "<i>"}, future)
    meta["steps"] += [
        {"name": "later", "kind": "finetune"},
        {"name": hostile, "kind": "future-thing"},
    ]
    meta["finished"] = None
    _save(run, meta)
    text = build_report(run, tmp_path / "out" / "page.html").read_text()
    parsed = Page(text)

    status = {s["data-kind"]: s["data-status"] for s in parsed.sections}
    assert status == {"train": "ok", "evaluate": "ok", "cost": "ok", "finetune": "unfinished",
                      "future-thing": "ok"}  # fmt: skip
    later = next(s for s in parsed.sections if s["data-kind"] == "finetune")
    assert "not run / unfinished" in later["text"]
    assert "unfinished" in text.split("</header>")[0]  # the run's finish time is missing

    generic = next(s for s in parsed.sections if s["data-kind"] == "future-thing")
    assert "No report section is registered" in generic["text"]
    for key, value in (("score", "0.125"), ("nested.curve", "[1, 2, 3]"), ("items[1].a", "2")):
        assert key in generic["text"] and value in generic["text"]
    assert "<b>bold</b> & more" in generic["text"]  # the parsed text equals the record string

    assert "<script>" not in text and "<b>bold" not in text and "<img src=x" not in text
    assert "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt;" in text
    assert "&lt;img src=x onerror=&quot;alert(1)&quot;&gt;" in text
    assert parsed.links == [f"#{s['id']}" for s in parsed.sections]
    assert all(re.fullmatch(r"[A-Za-z0-9_-]+", s["id"]) for s in parsed.sections)


def test_scatter_says_why_it_is_missing(run_folder, tmp_path):
    run, meta = _copy(run_folder, tmp_path, ("train", "evaluate"))
    path = run / "steps" / "evaluate.json"
    stored = json.loads(path.read_text())
    for r in stored["record"]["runs"]:
        del r["energy"]
    path.write_text(json.dumps(stored))
    _save(run, meta)
    section = next(s for s in Page(render_report(run)).sections if s["data-kind"] == "evaluate")
    assert "Accuracy against energy is not drawn" in section["text"]
    assert "no cost step ran" in section["text"]


def test_scatter_takes_float_energy_from_a_cost_step(run_folder, tmp_path):
    run, meta = _copy(run_folder, tmp_path, ("train", "evaluate", "cost"))
    path = run / "steps" / "evaluate.json"
    stored = json.loads(path.read_text())
    for r in stored["record"]["runs"]:
        del r["energy"]
    path.write_text(json.dumps(stored))
    _save(run, meta)
    parsed = Page(render_report(run))
    section = next(s for s in parsed.sections if s["data-kind"] == "evaluate")
    assert "cost step cost" in section["text"]  # where the float run's energy came from
    assert "Energy of the float run from cost" in section["text"]
    assert "no energy recorded for: trunc:6, drum:3" in section["text"]


def test_multipliers_without_error_summary_skip_the_plots(run_folder, tmp_path):
    run, meta = _copy(run_folder, tmp_path, ("multipliers",))
    path = run / "steps" / "multipliers.json"
    stored = json.loads(path.read_text())
    del stored["record"]["multipliers"][0]["error_summary"]
    path.write_text(json.dumps(stored))
    _save(run, meta)
    parsed = Page(render_report(run))
    assert not parsed.figures
    assert "carries no error_summary" in parsed.sections[0]["text"]


def test_a_failing_renderer_is_contained(run_folder, tmp_path, write_step):
    run, meta = _copy(run_folder, tmp_path, ("train", "cost"))
    write_step(run, "cost", "cost", {}, {"cost": "not a dict"})
    _save(run, meta)
    with pytest.warns(UserWarning, match="report section for step 'cost'"):
        text = render_report(run)
    parsed = Page(text)
    assert [s["data-status"] for s in parsed.sections] == ["ok", "error"]
    assert 'class="render-error"' in text and "not a dict" in parsed.sections[1]["text"]


def test_unreadable_record_counts_as_unfinished(run_folder, tmp_path):
    run, meta = _copy(run_folder, tmp_path, ("train",))
    (run / "steps" / "train.json").write_text('{"name": "train", "rec')
    _save(run, meta)
    parsed = Page(render_report(run))
    assert parsed.sections[0]["data-status"] == "unfinished"
    assert "unreadable" in parsed.sections[0]["text"]


def test_registered_section_renders_with_context(run_folder, tmp_path, write_step):
    """A new capability plugs in its section with the decorator; the context gives it the
    other steps' records."""
    run, meta = _copy(run_folder, tmp_path, ("train",))
    write_step(run, "probe", "probe-kind", {}, {"value": 3})
    meta["steps"].append({"name": "probe", "kind": "probe-kind"})
    _save(run, meta)

    @register_section("probe-kind")
    def render(step: dict, context: ReportContext) -> Section:
        train = context.steps_of_kind("train")[0]["record"]
        html = f"<p>probe {step['record']['value']} after {context.link('train')}</p>"
        return Section(f"probe of {train['model']}", html, "probe summary")

    try:
        assert "probe-kind" in registered_kinds()
        text = render_report(run)
        with pytest.raises(ValueError, match="already registered"):
            register_section("probe-kind")(lambda step, context: Section("x", ""))
    finally:
        report_html._RENDERERS.pop("probe-kind", None)
    parsed = Page(text)
    probe = parsed.sections[-1]
    assert "probe 3 after train" in probe["text"] and "probe of digits_cnn" in probe["text"]
    assert f'href="#{parsed.sections[0]["id"]}"' in text
    assert "probe summary" in text.split("</nav>")[0]


def test_not_a_run_folder(tmp_path):
    with pytest.raises(ConfigError, match="experiment.json"):
        build_report(tmp_path)


@pytest.mark.parametrize("spec", ["drum:3", "trunc:4@s4", "exact@u4"])
def test_multiplier_error_summary(spec):
    m = get_multiplier(spec)
    summary = multiplier_error_summary(m, blocks=32, bins=50)
    json.dumps(summary)  # plain JSON
    heat, hist = summary["heatmap"], summary["histogram"]
    rows = min(32, 2**m.a_bits)
    assert len(heat) == rows and all(len(r) == min(32, 2**m.b_bits) for r in heat)
    assert len(hist["edges"]) == len(hist["counts"]) + 1
    assert sum(hist["counts"]) == 2 ** (m.a_bits + m.b_bits)
    err = m.error_table().double()
    assert abs(sum(map(sum, heat)) / rows / len(heat[0]) - float(err.mean())) < 1e-3
    assert summary["a_range"] == list(m.a_range)
    if m.is_exact:
        assert {v for r in heat for v in r} == {0.0} and hist["counts"] == [2**8]
