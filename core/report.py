"""A study's summary written out as ``report.md`` with its figures (each as PNG and SVG).

The input is the JSON-able summary of a study (``design``, ``plugins``, ``patches``,
``guests``, ``platforms``, ``attribution`` per guest × platform, ...). Three figures:

- ``savings``: cycles per iteration each patch saves, per guest (one subplot each), one bar
  per platform: the Shapley share where it is exact, else the saving alone (for the
  cumulative design, which measures no plugin alone, the saving when added in series order);
- ``waterfall``: vanilla down to the whole set, one step per patch (guest × platform grid);
- ``interactions``: what each pair saves beyond the sum of its parts, as a heatmap.

matplotlib is imported only inside the functions that draw, so ``import worldswitch`` stays
light. SVG output is byte-for-byte reproducible: fixed hash salt, no date.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # only for annotations: matplotlib is imported where it draws
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

UNIT = "cycles per iteration"
#: a step smaller than this (cycles per iteration) is float noise, not a saving
ZERO = 1e-6
#: the interactions listed in report.md: smaller ones are noise at this model's resolution
INTERACTION_MIN = 1.0
#: the waterfall's closing step when the steps are savings alone: what they miss together
REST = "interactions/rest"
#: the closing step of the other kinds of waterfall, should their steps not reach the whole set
REMAINDER = "rest"

# colours: one per platform for bars (tab10), fixed ones for the waterfall
TOTAL_COLOUR = "#7f7f7f"
SAVING_COLOUR = "#2ca02c"
COST_COLOUR = "#d62728"
REST_COLOUR = "#ff7f0e"
NOT_MEASURED_COLOUR = "#dddddd"

# SVG ids are derived from this salt, not from a random one: same data, same bytes
_RC = {"svg.hashsalt": "worldswitch-report", "svg.fonttype": "none"}


# --------------------------------------------------------------------------- helpers


def _label(plugin: str, patches: Mapping[str, int | None]) -> str:
    """A plugin as the series knows it: its patch number, else (third-party) its name."""
    number = patches.get(plugin)
    return str(number) if number is not None else plugin


def _cells(data: Mapping[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    return {(c["guest"], c["platform"]): c for c in data["attribution"]}


def _saved(cell: Mapping[str, Any]) -> float | None:
    if cell.get("saved") is not None:
        return float(cell["saved"])
    if cell.get("all") is None:
        return None
    return float(cell["vanilla"]) - float(cell["all"])


def _has(cell: Mapping[str, Any], key: str) -> bool:
    return any(r.get(key) is not None for r in cell["plugins"])


def _step_method(cell: Mapping[str, Any], design: str) -> str:
    """How :func:`waterfall_steps` splits this cell's saving, in words for titles."""
    if design == "cumulative":
        return "steps: plugins added in series order, exact"
    if cell.get("shapley_exact"):
        return "steps: Shapley shares, exact"
    if _has(cell, "shapley"):
        return f"steps: Shapley shares from {cell.get('shapley_orders', 0)} sampled orders, then {REST}"
    if not _has(cell, "alone") and _has(cell, "marginal"):
        return f"steps: what the set loses without each, then {REST}"
    return f"steps: each saving alone over what it requires, then {REST}"


def _own_saving(plugin: str, alone: float, cell: Mapping[str, Any]) -> float:
    """A plugin's saving alone, less what the plugins it requires save by themselves.

    ``alone`` measures a plugin with its requirements ("+8 (with 7)"): adding up such figures
    counts 7 once for itself and again inside 8, and the waterfall would sink far below the
    whole set only for the rest step to climb back. When the requirements were measured on
    their own too, the difference is the plugin's own saving; otherwise ``alone`` stands.
    """
    measured = {frozenset(s["plugins"]): float(s["cycles"]) for s in cell.get("sets") or []}
    target = float(cell["vanilla"]) - alone
    # the set ``alone`` was measured on: the smallest one holding the plugin at that figure
    found = [s for s, cycles in measured.items() if plugin in s and abs(cycles - target) <= ZERO]
    if not found:
        return alone
    own = min(found, key=len)
    base = own - {plugin}
    if base and base in measured:
        return measured[base] - measured[own]
    return alone


def _series_savings(cell: Mapping[str, Any]) -> dict[str, float]:
    """What each plugin saves when added in the cumulative series, where one was added at a time."""
    out = {}
    sets = cell.get("sets") or []
    for prev, cur in zip(sets, sets[1:]):
        added = set(cur["plugins"]) - set(prev["plugins"])
        if len(added) == 1 and set(prev["plugins"]) <= set(cur["plugins"]):
            out[added.pop()] = float(prev["cycles"]) - float(cur["cycles"])
    return out


SHAPLEY = "Shapley share"
SERIES = "saved in series order"
ALONE = "saved alone"
MARGINAL = "lost without it"


def _per_patch(cell: Mapping[str, Any], design: str) -> tuple[str, dict[str, float]]:
    """The saving per plugin the savings figure shows for one cell, and what kind it is.

    Shapley where exact (it splits the whole set's saving fairly); a cumulative design measures
    no plugin alone past the first, so there the series' own steps are what it knows;
    otherwise the saving alone. Plugins not measured are absent.
    """
    rows = cell["plugins"]
    if cell.get("shapley_exact") or _has(cell, "shapley"):  # exact, or estimated from sampled orders
        return SHAPLEY, {r["plugin"]: r["shapley"] for r in rows if r.get("shapley") is not None}
    if design == "cumulative":
        return SERIES, _series_savings(cell)
    if not _has(cell, "alone") and _has(cell, "marginal"):  # leave-one-out measures only this
        return MARGINAL, {r["plugin"]: r["marginal"] for r in rows if r.get("marginal") is not None}
    return ALONE, {r["plugin"]: r["alone"] for r in rows if r.get("alone") is not None}


def waterfall_steps(cell: Mapping[str, Any], design: str, plugins: Sequence[str],
                    patches: Mapping[str, int | None]) -> list[tuple[str, float]]:
    """The steps of a waterfall from vanilla to the whole set, as (label, cycles saved per
    iteration): positive saves, negative costs. They sum to ``cell["saved"]``, so the bars
    end exactly at ``cell["all"]``. Empty when the whole set was not measured.

    - cumulative: the difference between consecutive measured sets (exact: nothing assumed);
    - exact Shapley: each plugin's share (they add up to the whole set's saving by definition);
    - sampled Shapley (the shapley design): the estimated shares, then the sampling's rest;
    - leave-one-out: what the set loses without each plugin, then ``interactions/rest``;
    - otherwise: each plugin's saving alone (less what its requirements save alone, when they
      were measured: see :func:`_own_saving`), then ``interactions/rest`` = saved − Σ steps,
      which is what the plugins do to each other (overlap or synergy) and what was not measured.

    Zero steps are left out; a last step closes any gap (float noise excepted).
    """
    saved = _saved(cell)
    if saved is None:
        return []
    closing = REMAINDER
    steps: list[tuple[str, float]] = []
    if design == "cumulative":
        sets = cell["sets"]
        for prev, cur in zip(sets, sets[1:]):
            before, now = set(prev["plugins"]), set(cur["plugins"])
            added = [p for p in cur["plugins"] if p not in before]
            # a set that also drops plugins is no single addition: name it by its own label
            label = ",".join(_label(p, patches) for p in added) if added and before <= now else cur["label"]
            steps.append((label, float(prev["cycles"]) - float(cur["cycles"])))
    else:
        if cell.get("shapley_exact") or _has(cell, "shapley"):
            key = "shapley"
        else:
            key = "marginal" if not _has(cell, "alone") and _has(cell, "marginal") else "alone"
        if key != "shapley" or not cell.get("shapley_exact"):
            closing = REST
        by_name = {row["plugin"]: row for row in cell["plugins"]}
        for p in plugins:
            value = by_name.get(p, {}).get(key)
            if value is not None:
                value = _own_saving(p, float(value), cell) if key == "alone" else float(value)
                steps.append((_label(p, patches), value))
    steps = [(label, value) for label, value in steps if abs(value) > ZERO]
    rest = saved - sum(value for _, value in steps)
    if abs(rest) > ZERO:
        steps.append((closing, rest))
    return steps


def _num(value: float | None) -> str:
    """Whole cycles for tables; ``-`` for not measured (round() also spares us a "-0")."""
    return "-" if value is None else str(round(value))


def _change(vanilla: float, whole: float) -> str:
    return f"{(whole - vanilla) / vanilla * 100:+.1f}%" if vanilla else "n/a"


def _md_cell(text: str) -> str:
    return text.replace("|", "\\|")


def _joined(items: Sequence[str]) -> str:
    return ", ".join(items) if items else "none"


# --------------------------------------------------------------------------- report.md


def _markdown(data: Mapping[str, Any]) -> str:
    plugins, patches = data["plugins"], data["patches"]
    guests, platforms, design = data["guests"], data["platforms"], data["design"]
    cells = _cells(data)
    labels = [_label(p, patches) for p in plugins]
    out = [f"# Study `{data['study']}`", ""]
    out += [f"Design **{design}** over {len(plugins)} plugins ({_joined(labels)}), "
            f"{len(guests)} guests ({_joined(guests)}) on {len(platforms)} platforms ({_joined(platforms)}). "
            f"Runs: {data.get('runs_made', 0)} made, {data.get('runs_reused', 0)} reused. "
            f"Every figure is in {UNIT}.", ""]

    out += ["## Skipped sets", ""]
    skipped = data.get("skipped") or []
    out += [f"- `{label}`: {reason}" for label, reason in skipped] or ["None."]
    out += ["", "## Invalid sets", ""]
    out += [f"- {message}" for message in data.get("invalid") or []] or ["None."]

    # the reference-shaped table: guests down, platforms across, as the series' cover letter had it
    out += ["", "## Vanilla → all plugins", "", f"{UNIT.capitalize()}, vanilla → every plugin (change).", ""]
    out += ["| guest | " + " | ".join(platforms) + " |", "|---" * (len(platforms) + 1) + "|"]
    for guest in guests:
        row = []
        for platform in platforms:
            cell = cells.get((guest, platform))
            if cell is None:
                row.append("-")
            elif cell.get("all") is None:
                row.append(f"{_num(cell['vanilla'])} → - (whole set not measured)")
            else:
                row.append(f"{_num(cell['vanilla'])} → {_num(cell['all'])} "
                           f"({_change(cell['vanilla'], cell['all'])})")
        out.append(f"| {guest} | " + " | ".join(row) + " |")

    out += ["", "## Attribution", "",
            f"{UNIT.capitalize()} saved, as alone / marginal / Shapley: alone is the plugin (with what it requires) "
            "over vanilla; marginal is what the whole set loses without it; Shapley is its share of the whole "
            "set's saving. `-`: not measured by this design."]
    if design == "cumulative":
        out += ["", "The cumulative design measures what each plugin saves when added in series order instead: "
                "see the savings figure and the waterfall."]
    for platform in platforms:
        out += ["", f"### Platform {platform}", ""]
        out += ["| patch | plugin | " + " | ".join(guests) + " |", "|---" * (len(guests) + 2) + "|"]
        for p in plugins:
            row = []
            for guest in guests:
                cell = cells.get((guest, platform))
                found = next((r for r in cell["plugins"] if r["plugin"] == p), None) if cell else None
                row.append(" / ".join(_num(found.get(k)) for k in ("alone", "marginal", "shapley")) if found else "-")
            number = patches.get(p)
            out.append(f"| {'-' if number is None else number} | {_md_cell(p)} | " + " | ".join(row) + " |")

    out += ["", f"## Interactions (|value| ≥ {INTERACTION_MIN:g} cycle)", ""]
    measured = sum(len(c.get("interactions") or []) for c in data["attribution"])
    listed = []
    for cell in data["attribution"]:
        for pair in cell.get("interactions") or []:
            if abs(pair["value"]) >= INTERACTION_MIN:
                listed.append(f"- {cell['guest']} on {cell['platform']}: {_label(pair['a'], patches)} × "
                              f"{_label(pair['b'], patches)}: {pair['value']:+.1f} {UNIT}")
    if listed:
        out += ["Positive: the pair saves more together than the sum of each alone; negative: they overlap.", ""]
        out += listed
    elif measured:
        out.append(f"None of the {measured} measured pairs (all guests and platforms) reaches "
                   f"{INTERACTION_MIN:g} cycle.")
    else:
        out.append(f"The {design} design measures no pairs (factorial does).")

    methods = sorted({_step_method(c, design) for c in data["attribution"]})
    kinds = sorted({_per_patch(c, design)[0] for c in data["attribution"]})
    out += ["", "## Figures", "",
            f"Per-patch savings ({' or '.join(kinds)}):", "",
            "![Per-patch savings per guest and platform](savings.png)", "",
            f"Waterfall from vanilla to every plugin ({'; '.join(methods)}):", "",
            "![Waterfall from vanilla to every plugin](waterfall.png)", "",
            "Pair interactions:", "",
            "![Pair interaction matrix](interactions.png)", ""]
    return "\n".join(out)


# --------------------------------------------------------------------------- figures


def _new_figure(width: float, height: float) -> Figure:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    # a bare Figure on an Agg canvas: no pyplot, so no global backend switch and no figure registry
    fig = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _suptitle(fig: Figure, title: str, study: str) -> None:
    """Title, then the study's name (long: "cumulative:series:null_hvc,...") wrapped to the width."""
    import textwrap

    chars = max(30, int(fig.get_figwidth() * 11))  # ~11 characters per inch at the default 12 pt
    fig.suptitle("\n".join(textwrap.wrap(title, chars) + textwrap.wrap(f"study {study}", chars)))


def _text_panel(ax: Axes, text: str) -> None:
    ax.text(0.5, 0.5, text, ha="center", va="center", transform=ax.transAxes)
    ax.set_xticks([])
    ax.set_yticks([])


def _tick_labels(ax: Axes, labels: Sequence[str]) -> None:
    ax.set_xticks(range(len(labels)))
    # numbers fit flat; a name (third-party plugin, "vanilla") needs slanting not to overlap
    if max((len(s) for s in labels), default=0) > 3:
        ax.set_xticklabels(labels, rotation=45, ha="right", rotation_mode="anchor")
    else:
        ax.set_xticklabels(labels)


def _savings_figure(data: Mapping[str, Any]) -> Figure:
    from matplotlib.patches import Patch

    plugins, patches, design = data["plugins"], data["patches"], data["design"]
    guests, platforms = data["guests"], data["platforms"]
    cells = {key: _per_patch(cell, design) for key, cell in _cells(data).items()}
    kinds = sorted({kind for kind, _ in cells.values()})
    mixed = len(kinds) > 1  # some cells exact Shapley, some not: the others are hatched
    measure = kinds[0] if len(kinds) == 1 else f"{SHAPLEY}, or {[k for k in kinds if k != SHAPLEY][0]} (hatched)"
    n, k = len(plugins), max(len(platforms), 1)
    fig = _new_figure(max(7.0, 0.25 * n * max(k, 2) + 2.5), 1.2 + 2.8 * max(len(guests), 1))
    axes = fig.subplots(max(len(guests), 1), 1, squeeze=False, sharex=True)[:, 0]
    _suptitle(fig, f"Per-patch savings per guest and platform ({measure})", data["study"])
    width = 0.8 / k
    for ax, guest in zip(axes, guests):
        missing = 0
        for j, platform in enumerate(platforms):
            kind, values = cells.get((guest, platform), (SHAPLEY, {}))
            # no bar where the design did not measure the value, rather than a misleading 0
            shown = [(i, values[p]) for i, p in enumerate(plugins) if p in values]
            missing += n - len(shown)
            ax.bar([i + (j - (k - 1) / 2) * width for i, _ in shown], [v for _, v in shown], width,
                   color=f"C{j % 10}", label=platform, hatch="//" if mixed and kind != SHAPLEY else None,
                   edgecolor="white", linewidth=0.3)
        ax.axhline(0, color="black", linewidth=0.6)
        ax.set_title(f"guest {guest}")
        ax.set_ylabel(f"{measure if not mixed else 'saved'},\n{UNIT}")
        if missing:
            ax.text(0.99, 0.97, f"no bar: not measured by this design ({missing} of {n * k})",
                    transform=ax.transAxes, ha="right", va="top", fontsize=8, color="#555555")
        ax.grid(axis="y", linewidth=0.3, alpha=0.6)
    _tick_labels(axes[-1], [_label(p, patches) for p in plugins])
    axes[-1].set_xlabel("patch (number in the series, or plugin name)")
    handles = [Patch(color=f"C{j % 10}", label=p) for j, p in enumerate(platforms)]
    if mixed:
        handles.append(Patch(facecolor="white", edgecolor="black", hatch="//", label=kinds[-1]))
    # below the plots: beside them it would sit under the (centred, wide) title of a narrow figure
    fig.legend(handles=handles, title="platform", loc="outside lower center", ncols=len(handles))
    return fig


def _draw_waterfall(ax: Axes, vanilla: float, whole: float, steps: Sequence[tuple[str, float]]) -> set[str]:
    """One waterfall into ax; returns the labels of its closing rest step, if any (for the legend)."""
    levels = [vanilla]
    rests = set()
    ax.bar(0, vanilla, color=TOTAL_COLOUR)
    for i, (label, value) in enumerate(steps, start=1):
        new = levels[-1] - value
        rest = label in (REST, REMAINDER)
        if rest:
            rests.add(label)
        colour = REST_COLOUR if rest else SAVING_COLOUR if value > 0 else COST_COLOUR
        ax.bar(i, abs(value), bottom=min(levels[-1], new), color=colour)
        # the change in cycles above the step, so the figure reads without the table
        ax.text(i, max(levels[-1], new), f"{-value:+.0f}", ha="center", va="bottom", fontsize=7, clip_on=True)
        levels.append(new)
    end = len(levels)
    ax.bar(end, whole, color=TOTAL_COLOUR)
    for x, y in ((0, vanilla), (end, whole)):
        ax.text(x, y, _num(y), ha="center", va="bottom", fontsize=7, clip_on=True)
    # thin connectors: each bar starts where the previous one ended
    ax.step(range(end + 1), levels + [whole], where="post", color="black", linewidth=0.4)
    # the savings are tens of percent at most: start the axis near the lowest level to see them
    lo, hi = min(levels + [whole]), max(levels + [whole])
    span = hi - lo or 0.1 * abs(hi) or 1.0
    bottom = lo - 0.5 * span
    ax.set_ylim(max(0.0, bottom) if lo >= 0 else bottom, hi + 0.2 * span)
    _tick_labels(ax, ["vanilla"] + [label for label, _ in steps] + ["all"])
    ax.set_ylabel(UNIT)
    ax.set_xlabel("patch")
    ax.grid(axis="y", linewidth=0.3, alpha=0.6)
    return rests


def _waterfall_figure(data: Mapping[str, Any]) -> Figure:
    from matplotlib.patches import Patch

    plugins, patches, design = data["plugins"], data["patches"], data["design"]
    guests, platforms = data["guests"], data["platforms"]
    cells = _cells(data)
    steps = {key: waterfall_steps(c, design, plugins, patches) for key, c in cells.items()}
    drawn = [key for key, c in cells.items() if c.get("all") is not None]
    longest = max((len(steps[key]) for key in drawn), default=0) + 2
    rows, cols = max(len(guests), 1), max(len(platforms), 1)
    # text panels only (no cell has the whole set): no need for room to draw bars
    fig = _new_figure(max(6.0, cols * max(3.2, 0.32 * longest + 1.2)), 1.4 + (3.0 if drawn else 1.6) * rows)
    axes = fig.subplots(rows, cols, squeeze=False)
    methods = sorted({_step_method(c, design) for c in data["attribution"]})
    _suptitle(fig, f"Waterfall from vanilla to every plugin ({'; '.join(methods)})"
              + ("; y axis does not start at 0" if drawn else ""), data["study"])
    rests: set[str] = set()
    for r, guest in enumerate(guests):
        for c, platform in enumerate(platforms):
            ax = axes[r, c]
            cell = cells.get((guest, platform))
            ax.set_title(f"{guest} on {platform}")
            if cell is None:
                _text_panel(ax, "not measured")
            elif cell.get("all") is None:
                _text_panel(ax, f"whole set not measured\nby this design\n(vanilla: {_num(cell['vanilla'])} {UNIT})")
            else:
                vanilla, whole = float(cell["vanilla"]), float(cell["all"])
                ax.set_title(f"{guest} on {platform}: {_change(vanilla, whole)}")
                rests |= _draw_waterfall(ax, vanilla, whole, steps[(guest, platform)])
    if drawn:
        handles = [Patch(color=TOTAL_COLOUR, label="vanilla / all plugins"),
                   Patch(color=SAVING_COLOUR, label="saving"), Patch(color=COST_COLOUR, label="cost")]
        if rests:
            handles.append(Patch(color=REST_COLOUR, label=" / ".join(sorted(rests))))
        fig.legend(handles=handles, loc="outside lower center", ncols=len(handles))
    return fig


def _interactions_figure(data: Mapping[str, Any]) -> Figure:
    import matplotlib
    import numpy as np
    from matplotlib.colors import Normalize
    from matplotlib.patches import Patch

    plugins, patches, design = data["plugins"], data["patches"], data["design"]
    guests, platforms = data["guests"], data["platforms"]
    cells = _cells(data)
    title = "Pair interactions: saved(R+A+B) − saved(R+A) − saved(R+B) + saved(R), R what both need"
    if not any(c.get("interactions") for c in data["attribution"]):
        fig = _new_figure(6.5, 2.5)
        ax = fig.subplots()
        _suptitle(fig, title, data["study"])
        other = f"{design} does not" if design != "factorial" else "this one has no pair to measure"
        _text_panel(ax, f"No pair measured:\nfactorial measures pairs; {other}.")
        return fig

    labels = [_label(p, patches) for p in plugins]
    index = {p: i for i, p in enumerate(plugins)}
    values = [abs(pair["value"]) for c in data["attribution"] for pair in c.get("interactions") or []]
    # one symmetric scale for every panel, so one colorbar serves them; at least ±1 cycle so that
    # float noise (1e-12) reads as the zero it is rather than as a full-scale colour
    bound = max([INTERACTION_MIN] + values)
    norm = Normalize(vmin=-bound, vmax=bound)
    cmap = matplotlib.colormaps["RdBu"].with_extremes(bad=NOT_MEASURED_COLOUR)
    n = len(plugins)
    slant = max(map(len, labels)) > 3
    rows, cols = max(len(guests), 1), max(len(platforms), 1)
    side = max(2.8, 0.28 * n + 1.2)
    fig = _new_figure(max(6.5, cols * side + 1.5), rows * side + 1.6)
    axes = fig.subplots(rows, cols, squeeze=False)
    _suptitle(fig, f"{title} (blue: the pair saves more together than apart; red: they overlap)", data["study"])
    image = None
    for r, guest in enumerate(guests):
        for c, platform in enumerate(platforms):
            ax = axes[r, c]
            ax.set_title(f"{guest} on {platform}")
            cell = cells.get((guest, platform))
            matrix = np.full((n, n), np.nan)
            for pair in (cell or {}).get("interactions") or []:
                if pair["a"] in index and pair["b"] in index:
                    i, j = index[pair["a"]], index[pair["b"]]
                    matrix[i, j] = matrix[j, i] = pair["value"]
            image = ax.imshow(np.ma.masked_invalid(matrix), cmap=cmap, norm=norm)
            if n <= 8:  # the numbers themselves, while they fit
                for i in range(n):
                    for j in range(n):
                        if not math.isnan(matrix[i, j]):
                            # white on the dark ends of the colormap, black on the pale middle
                            dark = abs(matrix[i, j]) > 0.6 * bound
                            ax.text(j, i, str(round(matrix[i, j])), ha="center", va="center", fontsize=7,
                                    color="white" if dark else "black")
            ax.set_xticks(range(n), labels, fontsize=7, rotation=45 if slant else 0, ha="right" if slant else "center",
                          rotation_mode="anchor")
            ax.set_yticks(range(n), labels, fontsize=7)
            ax.set_xlabel("patch")
            ax.set_ylabel("patch")
    if image is not None:
        fig.colorbar(image, ax=axes, label=f"interaction, {UNIT}", shrink=0.8)
    fig.legend(handles=[Patch(color=NOT_MEASURED_COLOUR, label="not measured (or same plugin)")],
               loc="outside lower center")
    return fig


def _save(fig: Figure, out_dir: Path, stem: str) -> list[Path]:
    png, svg = out_dir / f"{stem}.png", out_dir / f"{stem}.svg"
    # no software version or date in the files: the same data gives the same bytes
    fig.savefig(png, dpi=100, metadata={"Software": None})
    fig.savefig(svg, metadata={"Date": None})
    return [png, svg]


# --------------------------------------------------------------------------- entry point


def write_report(data: dict, out_dir: Path) -> list[Path]:
    """Write report.md and the figures (each as PNG and SVG) into out_dir (created if missing);
    return the paths written."""
    import matplotlib

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    report = out_dir / "report.md"
    report.write_text(_markdown(data), encoding="utf-8")
    written = [report]
    # rc_context, not rcParams: the caller's matplotlib settings are left as they were
    with matplotlib.rc_context(_RC):
        for stem, draw in (("savings", _savings_figure), ("waterfall", _waterfall_figure),
                           ("interactions", _interactions_figure)):
            written += _save(draw(data), out_dir, stem)
    return written
