"""Result tables: fold means, number formats, Markdown tables laid out like the papers', and
``results.md`` / ``results.json``."""

import json
import math
import os

import numpy as np

from keras_fer.recipes._common.jsonio import json_ready

DEFAULT_METRICS = ("accuracy", "mean_class_accuracy", "last_accuracy", "train_seconds",
                   "best_epoch")


def _group_row(keys, values, members, metrics):
    ok = [r for r in members if "error" not in r]
    agg = dict(zip(keys, values), n=len(ok), failed=len(members) - len(ok))
    agg.update({k: ok[0][k] for k in ("params", "flops", "epochs") if ok and k in ok[0]})
    for metric in metrics:
        vals = [r[metric] for r in ok if r.get(metric) is not None]
        agg[metric] = float(np.mean(vals)) if vals else None
        agg[f"{metric}_std"] = float(np.std(vals)) if vals else None
    for nested in ("per_class", "weighted"):
        dicts = [r[nested] for r in ok if r.get(nested)]
        if dicts:
            agg[nested] = {k: float(np.mean([d[k] for d in dicts])) for k in dicts[0]}
    if not ok:
        agg["error"] = members[0].get("error")
    return agg


def aggregate(rows, keys, metrics=DEFAULT_METRICS):
    """Rows grouped by the values of ``keys`` (first-seen order): every metric becomes its
    mean over the group, ``<metric>_std`` its standard deviation (population, 0 for one
    row), ``n`` the group size; per-class accuracies and weighted P/R/F1 are averaged too.
    Failed rows are left out of the means and counted in ``failed``."""
    groups = {}
    for row in rows:
        groups.setdefault(tuple(row.get(k) for k in keys), []).append(row)
    return [_group_row(keys, values, members, metrics) for values, members in groups.items()]


def fmt_pct(value, std=None):
    """``0.9231`` -> ``"92.31"`` (with ``" ± s"`` when a std over folds is given)."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    text = f"{100 * value:.2f}"
    return text + (f" ± {100 * std:.2f}" if std else "")


def fmt_seconds(seconds):
    """``373.2`` -> ``"6m13s"``, the papers' training-time format."""
    if seconds is None:
        return "n/a"
    minutes, secs = divmod(int(round(seconds)), 60)
    return f"{minutes}m{secs:02d}s" if minutes else f"{secs}s"


def fmt_millions(count):
    return "n/a" if count is None else f"{count / 1e6:.2f}"


def _cell(row, how):
    try:
        value = how(row) if callable(how) else row.get(how)
    except (KeyError, TypeError):
        value = None
    return "n/a" if value is None else str(value)


def markdown_table(rows, columns):
    """A Markdown table: ``columns`` is ``[(header, key or function(row) -> text)]``; a row
    with ``error`` shows it in place of the missing values."""
    lines = ["| " + " | ".join(h for h, _ in columns) + " |",
             "|" + "---|" * len(columns)]
    for row in rows:
        cells = [_cell(row, how) for _, how in columns]
        if row.get("error") and row.get("n", 0) == 0:
            cells[-1] = f"FAILED: {row['error'][:80]}"
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def write_results(out, title, sections, rows, notes=(), settings=None, extra=None):
    """Prints the tables and writes ``<out>/results.md`` and ``<out>/results.json``.

    ``sections``: ``[(heading, markdown table)]``; ``rows``: every summary row (JSON);
    ``notes``: lines printed under the title (mode, data, caveats); ``settings``: a dict
    recorded in the JSON (the command's arguments); ``extra``: more top-level JSON keys (a
    recipe's tests, ...)."""
    parts = [f"# {title}", ""]
    parts += [f"- {n}" for n in notes]
    for heading, table in sections:
        parts += ["", f"## {heading}", "", table]
    text = "\n".join(parts) + "\n"
    print(text)
    with open(os.path.join(out, "results.md"), "w") as f:
        f.write(text)
    with open(os.path.join(out, "results.json"), "w") as f:
        json.dump(json_ready(dict({"title": title, "settings": settings or {}, "rows": rows},
                                  **(extra or {}))), f, indent=1)
    return text


def exit_code(rows):
    """0 when every run finished, 1 when any failed (for CI)."""
    return 1 if any("error" in r for r in rows) else 0
