"""Plots of a search: the best feasible value against the trial number, the objective against
each searched key, and (two or more objectives) the Pareto front of the first two."""

from __future__ import annotations

from matplotlib.figure import Figure

from llenergymeasure.results.metrics import BY_COLUMN
from llenergymeasure.results.plot_base import Plot, slug
from llenergymeasure.results.search import SearchView, TrialView


def _label(metric: str) -> str:
    found = BY_COLUMN.get(metric)
    return f"{found.label} ({found.unit})" if found else metric


def search_plots(view: SearchView) -> list[Plot]:
    plots = [best_so_far_plot(view)] if len(view.search.goals) == 1 else []
    plots += [objective_plot(view, key) for key in view.search.space]
    if len(view.search.goals) > 1:
        plots.append(front_plot(view))
    return plots


def _measured(trials: list[TrialView], index: int = 0) -> list[TrialView]:
    return [t for t in trials if t.values[index] is not None]


def best_so_far_plot(view: SearchView) -> Plot:
    goal = view.search.goals[0]
    title = f"Best feasible {goal.metric} by trial"
    if not any(t.state == "complete" for t in view.trials):
        return Plot("search_best_so_far", title, None, "no trial met every constraint")
    fig = Figure(figsize=(8, 5), layout="constrained")
    ax = fig.add_subplot()
    for cell in view.cells:
        best = cell.best_so_far(view.search)
        numbers = [t.number for t in cell.trials]
        label = f"cell {cell.cell}" if len(view.cells) > 1 else "best so far"
        ax.step(numbers, best, where="post", label=label)
        feasible = [t for t in cell.trials if t.state == "complete"]
        ax.scatter(
            [t.number for t in feasible],
            [t.values[0] for t in feasible],
            s=14,
            alpha=0.5,
            color="grey",
        )
    ax.set_xlabel("trial (order asked)")
    ax.set_ylabel(_label(goal.metric))
    ax.set_title(f"{title}\n(dots: feasible trials, one run each; {goal.direction})")
    ax.grid(True, alpha=0.3)
    ax.legend()
    return Plot("search_best_so_far", title, fig)


def objective_plot(view: SearchView, key: str) -> Plot:
    goal = view.search.goals[0]
    title = f"{goal.metric} against {key}"
    trials = [t for t in _measured(view.trials) if key in t.params]
    if not trials:
        return Plot(f"search_{slug(key)}", title, None, f"no trial measured {goal.metric}")
    fig = Figure(figsize=(8, 5), layout="constrained")
    ax = fig.add_subplot()
    values = [t.params[key] for t in trials]
    numeric = all(isinstance(v, int | float) and not isinstance(v, bool) for v in values)
    categories = sorted({str(v) for v in values})
    for state, marker, face in (("complete", "o", None), ("infeasible", "o", "none")):
        chosen = [
            t
            for t in trials
            if t.state == state or (state == "complete" and t.state == "skipped-duplicate")
        ]
        xs = [t.params[key] if numeric else categories.index(str(t.params[key])) for t in chosen]
        ax.scatter(
            xs,
            [t.values[0] for t in chosen],
            marker=marker,
            facecolors=face,
            edgecolors="C0",
            label="feasible" if state == "complete" else "infeasible (a constraint missed)",
        )
    if not numeric:
        ax.set_xticks(range(len(categories)), categories)
    ax.set_xlabel(key)
    ax.set_ylabel(_label(goal.metric))
    ax.set_title(f"{title}\n(each trial's single run)")
    ax.grid(True, alpha=0.3)
    ax.legend()
    return Plot(f"search_{slug(key)}", title, fig)


def front_plot(view: SearchView) -> Plot:
    first, second = view.search.goals[:2]
    title = f"Pareto front: {first.metric} and {second.metric}"
    trials = [t for t in view.trials if t.state == "complete" and None not in t.values[:2]]
    if not trials:
        return Plot("search_pareto", title, None, "no trial met every constraint")
    fig = Figure(figsize=(8, 5.5), layout="constrained")
    ax = fig.add_subplot()
    ax.scatter(
        [t.values[0] for t in trials],
        [t.values[1] for t in trials],
        color="grey",
        label="feasible trials",
    )
    front = sorted(
        (t for cell in view.cells for t in cell.pareto(view.search)), key=lambda t: t.values[0]
    )
    ax.plot(
        [t.values[0] for t in front],
        [t.values[1] for t in front],
        "--o",
        color="black",
        markerfacecolor="none",
        markersize=11,
        label="Pareto front",
    )
    ax.set_xlabel(f"{_label(first.metric)}, {first.direction}")
    ax.set_ylabel(f"{_label(second.metric)}, {second.direction}")
    ax.set_title(f"{title}\n(each trial's single run)")
    ax.grid(True, alpha=0.3)
    ax.legend()
    return Plot("search_pareto", title, fig)
