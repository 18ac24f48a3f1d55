"""The HTML report of a run folder: one self-contained page (inline CSS and SVG, no network) built
from the JSON records alone (`experiment.json`, `steps/<name>.json`), never from live objects.

Each step kind has its own section renderer, registered with `@register_section(kind)` in a
module of `axdnn.report.sections`; a kind without one is shown as a generic key/value table, so a
new capability never breaks the report. This module holds the registry, the page frame and the
small helpers renderers share: escaped tables, inline SVG figures (matplotlib's Agg canvas, no
pyplot, no global backend switch) that always come with a table of their numbers.
"""

from __future__ import annotations

import hashlib
import html
import io
import json
import math
import os
import re
import warnings
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import matplotlib
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from axdnn.errors import ConfigError

__all__ = [
    "Raw",
    "ReportContext",
    "Section",
    "build_report",
    "esc",
    "figure",
    "flat_table",
    "fmt",
    "kv_table",
    "new_figure",
    "note",
    "pct",
    "plain",
    "register_section",
    "registered_kinds",
    "render_generic",
    "render_report",
    "renderer_for",
    "svg_of",
    "table",
]


# ---- the records ---------------------------------------------------------------------------


@dataclass
class Section:
    """What a renderer returns: a plain-text title (escaped by the page), an HTML fragment (the
    renderer escapes every record string in it) and an optional one-line plain-text summary that
    the table of contents shows."""

    title: str
    html: str
    summary: str = ""


@dataclass
class ReportContext:
    """Read access to the whole run for a renderer: the experiment header, the step order and
    every finished step's stored record (`{name, kind, config, inputs_hash, seconds, record}`)."""

    run_dir: Path
    experiment: dict
    stored: dict[str, dict] = field(default_factory=dict)
    anchors: dict[str, str] = field(default_factory=dict)

    @property
    def order(self) -> list[dict]:
        """The experiment's steps, `{name, kind}`, in run order (finished or not)."""
        return list(self.experiment.get("steps") or [])

    def step(self, name: str) -> dict | None:
        """The stored record file of step `name`, or None when it has not finished."""
        return self.stored.get(name)

    def steps_of_kind(self, kind: str) -> list[dict]:
        """Finished steps of one kind, in run order."""
        names = [s.get("name") for s in self.order if s.get("kind") == kind]
        return [self.stored[n] for n in names if n in self.stored]

    def link(self, name: str) -> str:
        """An HTML link to another step's section (escaped)."""
        anchor = self.anchors.get(name)
        if anchor is None:
            return f"<code>{esc(name)}</code>"
        return f'<a href="#{anchor}"><code>{esc(name)}</code></a>'


Renderer = Callable[[dict, ReportContext], Section]
_RENDERERS: dict[str, Renderer] = {}


def register_section(kind: str) -> Callable[[Renderer], Renderer]:
    """Decorator: `render(step, context) -> Section` renders steps of `kind`. `step` is the
    stored record file (`{name, kind, config, inputs_hash, seconds, record}`)."""

    def decorate(render: Renderer) -> Renderer:
        old = _RENDERERS.get(kind)
        if old is not None and _qualname(old) != _qualname(render):
            raise ValueError(
                f"a report section for step kind {kind!r} is already registered "
                f"({_qualname(old)}); cannot register {_qualname(render)} too"
            )
        _RENDERERS[kind] = render
        return render

    return decorate


def _qualname(fn: Callable) -> str:
    return f"{getattr(fn, '__module__', '?')}.{getattr(fn, '__qualname__', repr(fn))}"


def registered_kinds() -> list[str]:
    """Step kinds that have a section renderer of their own."""
    return sorted(_RENDERERS)


def renderer_for(kind: str) -> Renderer:
    """The renderer of a kind; the generic key/value renderer for kinds without one."""
    return _RENDERERS.get(kind, render_generic)


# ---- escaping and formatting ----------------------------------------------------------------


class Raw(str):
    """An HTML fragment that table cells and helpers insert as is (everything else is escaped)."""


def esc(value: Any) -> str:
    """HTML-escaped text of any value (quotes included, safe in attributes)."""
    return html.escape(str(value), quote=True)


def plain(text: Any) -> str:
    """Text for matplotlib labels: `$` escaped so that record strings never start mathtext."""
    return str(text).replace("$", r"\$")


def fmt(value: Any, digits: int = 4) -> str:
    """Compact plain text of a number (4 significant digits) or any other value."""
    if value is None:
        return "–"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value) or math.isinf(value):
            return str(value)
        if value == 0:
            return "0"
        return f"{value:.{digits}g}"
    return str(value)


def pct(value: Any, digits: int = 2) -> str:
    """A fraction as a percentage number without the sign (headers say "(%)")."""
    if not isinstance(value, int | float) or isinstance(value, bool):
        return fmt(value)
    return f"{100 * value:.{digits}f}"


def _cell(value: Any, tag: str = "td") -> str:
    if isinstance(value, Raw):
        return f"<{tag}>{value}</{tag}>"
    numeric = isinstance(value, int | float) and not isinstance(value, bool)
    text = fmt(value)
    if not numeric and _looks_numeric(text):
        numeric = True
    cls = ' class="num"' if numeric and tag == "td" else ""
    return f"<{tag}{cls}>{esc(text)}</{tag}>"


_NUMBER = re.compile(r"^[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?$")


def _looks_numeric(text: str) -> bool:
    return bool(_NUMBER.match(text))


def table(
    headers: Sequence[Any],
    rows: Iterable[Sequence[Any]],
    caption: str | None = None,
    cls: str = "",
    row_headers: bool = False,
) -> str:
    """An HTML table; cells are escaped unless they are `Raw`; numbers get 4 significant digits
    and align right. `row_headers` makes the first cell of each row a <th>."""
    parts = [f'<table class="{esc(("data " + cls).strip())}">']
    if caption:
        parts.append(f"<caption>{esc(caption)}</caption>")
    parts.append("<thead><tr>" + "".join(_cell(h, "th") for h in headers) + "</tr></thead>")
    parts.append("<tbody>")
    for row in rows:
        cells = list(row)
        head = _cell(cells[0], "th") if row_headers and cells else ""
        body = cells[1:] if row_headers and cells else cells
        parts.append("<tr>" + head + "".join(_cell(c) for c in body) + "</tr>")
    parts.append("</tbody></table>")
    return "".join(parts)


def kv_table(pairs: Iterable[tuple[Any, Any]], caption: str | None = None) -> str:
    """A two-column key/value table."""
    return table(["", ""], ([k, v] for k, v in pairs), caption, cls="kv", row_headers=True)


def note(text: str, cls: str = "note") -> str:
    """A paragraph of escaped text."""
    return f'<p class="{esc(cls)}">{esc(text)}</p>'


# ---- figures --------------------------------------------------------------------------------


def new_figure(width: float = 6.4, height: float = 3.6) -> Figure:
    """A matplotlib Figure on the Agg canvas (headless; pyplot and its global state untouched)."""
    fig = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(fig)
    return fig


_SVG_JUNK = [
    re.compile(r"<\?xml.*?\?>", re.S),
    re.compile(r"<!DOCTYPE.*?>", re.S),
    re.compile(r"<!--.*?-->", re.S),
    re.compile(r"<metadata>.*?</metadata>", re.S),
    re.compile(r'\s+xmlns(:\w+)?="[^"]*"'),
]
_SVG_REF = re.compile(r'(\bid="|url\(#|href="#)([^")]+)')


def svg_of(fig: Figure, label: str = "") -> str:
    """The figure as an inline <svg> element: no XML prolog, comments, metadata or namespace
    URLs (an HTML parser needs none), ids prefixed so that several figures never clash."""
    buf = io.StringIO()
    params = {"svg.hashsalt": "axdnn-report", "svg.fonttype": "path", "svg.image_inline": True}
    with matplotlib.rc_context(params):
        fig.savefig(buf, format="svg", metadata={"Date": None})
    svg = buf.getvalue()
    for pattern in _SVG_JUNK:
        svg = pattern.sub("", svg)
    svg = svg.strip()
    prefix = "f" + hashlib.sha1(svg.encode()).hexdigest()[:8] + "-"
    ids = set(re.findall(r'\bid="([^"]+)"', svg))
    svg = _SVG_REF.sub(lambda m: m.group(1) + (prefix + m.group(2) if m.group(2) in ids else
                                               m.group(2)), svg)  # fmt: skip
    attrs = f' role="img" aria-label="{esc(label)}"' if label else ' role="img"'
    return svg.replace("<svg", "<svg" + attrs, 1)


def figure(fig: Figure, caption: str, numbers: str, wide: bool = False) -> str:
    """A figure with its numbers: the inline SVG, a caption, and the HTML table `numbers` beside
    it (under it when `wide`). Every figure in the report goes through here."""
    if "<table" not in numbers:
        raise ValueError("every report figure needs a table of its numbers")
    svg = svg_of(fig, caption)
    layout = "fig wide" if wide else "fig"
    return (
        f'<figure class="{layout}"><div class="plot">{svg}</div>'
        f'<div class="numbers">{numbers}</div>'
        f"<figcaption>{esc(caption)}</figcaption></figure>"
    )


# ---- the generic section ----------------------------------------------------------------------

_GENERIC_ROWS = 400


def _flatten(value: Any, prefix: str, out: list[tuple[str, Any]]) -> None:
    if isinstance(value, dict) and value:
        for key, item in value.items():
            _flatten(item, f"{prefix}.{key}" if prefix else str(key), out)
    elif isinstance(value, list) and value and any(isinstance(v, dict | list) for v in value):
        for i, item in enumerate(value):
            _flatten(item, f"{prefix}[{i}]", out)
    elif isinstance(value, list):
        shown = ", ".join(fmt(v) for v in value[:32])
        out.append((prefix, f"[{shown}{', …' if len(value) > 32 else ''}]"))
    elif isinstance(value, dict):
        out.append((prefix, "{}"))
    else:
        out.append((prefix, value))


def flat_table(record: Any, caption: str | None = None) -> str:
    """Any JSON value as a key/value table of dotted paths (long records are cut, saying so)."""
    rows: list[tuple[str, Any]] = []
    _flatten(record, "", rows)
    extra = ""
    if len(rows) > _GENERIC_ROWS:
        extra = note(f"showing the first {_GENERIC_ROWS} of {len(rows)} values")
        rows = rows[:_GENERIC_ROWS]
    if not rows:
        return note("(empty record)")
    return kv_table(rows, caption) + extra


def render_generic(step: dict, context: ReportContext) -> Section:
    """Steps of a kind without a renderer of its own: the record as a key/value table."""
    kind = step.get("kind")
    text = (
        f"No report section is registered for step kind {kind!r}; the record is shown as a "
        "table of its values."
    )
    return Section(step.get("name", "?"), note(text) + flat_table(step.get("record")))


# ---- the page ---------------------------------------------------------------------------------

CSS = """
:root { --fg:#1d2330; --muted:#5b6475; --line:#d9dde5; --bg:#fff; --band:#f4f6f9;
        --accent:#2456a6; --warn:#9a5b00; --bad:#a31d1d; }
* { box-sizing: border-box; }
body { margin:0; color:var(--fg); background:var(--bg);
       font:15px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, "DejaVu Sans", sans-serif; }
header, nav, main, footer { max-width:1180px; margin:0 auto; padding:0 1.2rem; }
header { padding-top:1.2rem; }
h1 { font-size:1.6rem; margin:.2rem 0 .4rem; }
h2 { font-size:1.25rem; margin:0 0 .5rem; }
h3 { font-size:1.05rem; margin:1.1rem 0 .4rem; }
a { color:var(--accent); }
code { font-family: ui-monospace, "DejaVu Sans Mono", monospace; font-size:.92em; }
.muted, .stepmeta { color:var(--muted); font-size:.9rem; }
nav#contents { margin-top:1rem; }
nav#contents ol { margin:.2rem 0 0; padding-left:1.6rem; }
nav#contents li { margin:.15rem 0; }
nav .summary { color:var(--muted); font-size:.9rem; }
.kind { display:inline-block; font-size:.75rem; padding:0 .45em; border:1px solid var(--line);
        border-radius:.6em; color:var(--muted); vertical-align:middle; font-weight:normal; }
.badge-unfinished { color:var(--warn); font-weight:600; }
.badge-error { color:var(--bad); font-weight:600; }
section.step { border-top:2px solid var(--line); padding:1rem 0 1.4rem; }
section.step.unfinished { background:repeating-linear-gradient(45deg,#fff,#fff 8px,#fbf7ef 8px,
        #fbf7ef 16px); }
p.note { color:var(--muted); font-style:italic; }
p.unfinished { color:var(--warn); font-weight:600; }
p.warn { color:var(--warn); }
div.render-error { border-left:4px solid var(--bad); background:#fbeeee; padding:.4rem .8rem; }
table.data { border-collapse:collapse; margin:.3rem 0 .8rem; font-size:.86rem; }
table.data caption { text-align:left; font-weight:600; padding:.2rem 0; color:var(--fg); }
table.data th, table.data td { border:1px solid var(--line); padding:.18rem .5rem;
        vertical-align:top; }
table.data thead th { background:var(--band); position:sticky; top:0; }
table.data td.num { text-align:right; font-variant-numeric:tabular-nums; white-space:nowrap; }
table.kv th { text-align:left; background:var(--band); font-weight:600; }
table.kv td.num { text-align:left; }
table.kv thead { display:none; }
figure.fig { display:flex; flex-wrap:wrap; gap:.6rem 1.2rem; align-items:flex-start;
        margin:.8rem 0 1.2rem; padding:.6rem; border:1px solid var(--line); border-radius:6px; }
figure.fig .plot { flex:0 1 620px; min-width:0; }
figure.fig .plot svg { display:block; width:100%; max-width:640px; height:auto; }
figure.fig .numbers { flex:1 1 320px; min-width:0; max-height:30rem; overflow:auto; }
figure.fig.wide .numbers { flex-basis:100%; }
figure.fig figcaption { flex-basis:100%; color:var(--muted); font-size:.88rem; }
details { margin:.4rem 0; }
details > summary { cursor:pointer; color:var(--accent); }
footer { color:var(--muted); font-size:.85rem; padding:1rem 1.2rem 2rem; border-top:1px solid
        var(--line); }
@media print { figure.fig .numbers { max-height:none; overflow:visible; } }
"""


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_-]+", "-", text).strip("-").lower() or "step"


def _read_json(path: Path) -> tuple[dict | None, str | None]:
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None, None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        return None, f"{type(err).__name__}: {err}"
    if not isinstance(value, dict):
        return None, f"expected a JSON object, found {type(value).__name__}"
    return value, None


def _load_run(run_dir: Path) -> tuple[dict, dict[str, dict], dict[str, str]]:
    path = run_dir / "experiment.json"
    experiment, problem = _read_json(path)
    if experiment is None:
        why = problem or "it does not exist"
        raise ConfigError(
            f"{str(run_dir)!r} is not a readable run folder: {str(path)!r} ({why}); give the "
            "--out folder of `axdnn run`, which holds experiment.json and steps/<name>.json"
        )
    stored, broken = {}, {}
    for entry in experiment.get("steps") or []:
        name = str(entry.get("name", ""))
        record, problem = _read_json(run_dir / "steps" / f"{name}.json")
        if record is not None:
            stored[name] = record
        elif problem is not None:
            broken[name] = problem
    return experiment, stored, broken


def _header(exp: dict, run_dir: Path) -> str:
    name = exp.get("name") or run_dir.name
    machine = exp.get("machine") or {}
    mach = ", ".join(
        f"{k} {machine[k]}"
        for k in ("platform", "cpu", "threads", "python", "torch")
        if k in machine
    )
    finished = exp.get("finished") or "unfinished (the run stopped early or is still running)"
    version = exp.get("axdnn_version", "?")
    if exp.get("code_version") and exp.get("code_version") != version:
        version = f"{version} (code {exp['code_version']})"
    pairs = [
        ("axdnn version", version),
        ("machine", mach or "not recorded"),
        ("seed", exp.get("seed", "not recorded")),
        ("started", exp.get("started") or "not recorded"),
        ("finished", finished),
        ("experiment file", exp.get("file") or "not recorded"),
    ]
    desc = f'<p class="desc">{esc(exp["description"])}</p>' if exp.get("description") else ""
    return f"<header><h1>{esc(name)}</h1>{desc}{kv_table(pairs)}</header>"


def _step_meta(step: dict) -> str:
    bits = [f"kind <code>{esc(step.get('kind', '?'))}</code>"]
    if isinstance(step.get("seconds"), int | float):
        bits.append(f"ran in {esc(fmt(float(step['seconds']), 3))} s")
    if step.get("inputs_hash"):
        bits.append(f"inputs hash <code>{esc(str(step['inputs_hash'])[:12])}</code>")
    return f'<p class="stepmeta">{" · ".join(bits)}</p>'


def _config(step: dict) -> str:
    config = step.get("config")
    if not config:
        return ""
    return f"<details><summary>step settings</summary>{flat_table(config)}</details>"


def _render_step(step: dict, context: ReportContext) -> tuple[Section, bool]:
    kind = str(step.get("kind", ""))
    try:
        return renderer_for(kind)(step, context), False
    except Exception as err:  # a broken renderer must not take the whole report down
        warnings.warn(
            f"report section for step {step.get('name')!r} (kind {kind!r}) failed: {err!r}",
            stacklevel=2,
        )
        body = (
            f'<div class="render-error"><p>The {esc(kind)} section could not be drawn '
            f"({esc(type(err).__name__)}: {esc(err)}); the record follows as a table.</p></div>"
            + flat_table(step.get("record"))
        )
        return Section(str(step.get("name", "?")), body, "section failed"), True


def render_report(run_dir: str | os.PathLike[str]) -> str:
    """The report page of a run folder as an HTML string (see `build_report`)."""
    run_dir = Path(run_dir)
    experiment, stored, broken = _load_run(run_dir)
    order = [s for s in experiment.get("steps") or [] if isinstance(s, dict)]
    anchors = {}
    for index, entry in enumerate(order, 1):
        anchors.setdefault(str(entry.get("name", "")), f"s{index}-{_slug(str(entry.get('name')))}")
    context = ReportContext(run_dir, experiment, stored, anchors)
    toc, body = [], []
    for index, entry in enumerate(order, 1):
        name, kind = str(entry.get("name", "")), str(entry.get("kind", ""))
        anchor = f"s{index}-{_slug(name)}"
        step = stored.get(name)
        if step is None:
            why = broken.get(name)
            text = (
                f"not run / unfinished: its record steps/{name}.json is unreadable ({why})"
                if why
                else f"not run / unfinished: no record steps/{name}.json yet"
            )
            status, section = "unfinished", Section(name, note(text, "unfinished"), "")
            badge = '<span class="badge-unfinished">not run / unfinished</span>'
            inner = section.html
        else:
            section, failed = _render_step(step, context)
            status = "error" if failed else "ok"
            badge = '<span class="badge-error">section failed</span>' if failed else ""
            inner = _step_meta(step) + section.html + _config(step)
        title = section.title or name
        summary = (
            f' <span class="summary">— {esc(section.summary)}</span>' if section.summary else ""
        )
        toc.append(
            f'<li><a href="#{anchor}">{esc(title)}</a> <span class="kind">{esc(kind)}</span>'
            f"{' ' + badge if badge else ''}{summary}</li>"
        )
        body.append(
            f'<section id="{anchor}" class="step {esc(status)}" data-kind="{esc(kind)}" '
            f'data-status="{esc(status)}"><h2>{index}. {esc(title)} '
            f'<span class="kind">{esc(kind)}</span></h2>{inner}</section>'
        )
    name = experiment.get("name") or run_dir.name
    nav = (
        '<nav id="contents"><h2>Contents</h2>'
        + (f"<ol>{''.join(toc)}</ol>" if toc else note("the experiment lists no steps"))
        + "</nav>"
    )
    footer = (
        f"<footer>Built by axdnn from the JSON records of run folder <code>{esc(run_dir)}</code> "
        "alone; the page needs no other file and no network.</footer>"
    )
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>axdnn report: {esc(name)}</title><style>{CSS}</style></head><body>"
        f"{_header(experiment, run_dir)}{nav}<main>{''.join(body)}</main>{footer}</body></html>\n"
    )


def build_report(
    run_dir: str | os.PathLike[str], out: str | os.PathLike[str] | None = None
) -> Path:
    """Write the self-contained HTML report of a run folder (default `run_dir/report.html`) from
    its JSON records alone; unfinished steps are listed as such. Returns the page's path."""
    run_dir = Path(run_dir)
    page = render_report(run_dir)
    target = Path(out) if out is not None else run_dir / "report.html"
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    tmp.write_text(page, encoding="utf-8")
    os.replace(tmp, target)
    return target
