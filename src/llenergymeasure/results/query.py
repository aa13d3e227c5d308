"""Filtering and sorting the per-configuration summary for `llem results show`."""

from __future__ import annotations

import math

import pandas as pd

from llenergymeasure.errors import UserError

# Short names for the columns `show` prints; any summary column name works too.
SORT_ALIASES = {
    "j_per_token": "energy.j_per_output_token.mean",
    "tok_per_s": "throughput.output_tokens_per_s.mean",
    "ttft_p50": "latency.ttft_ms.p50.mean",
    "itl_p50": "latency.itl_ms.p50.mean",
    "failures": "runs_failed",
    "config": "config_index",
}
CONFIG_COLUMNS = ("config_index", "config_hash", "backend", "model")


def filter_keys(swept_keys: list[str]) -> list[str]:
    return [*CONFIG_COLUMNS, *(key for key in swept_keys if key not in CONFIG_COLUMNS)]


def apply_filters(summary: pd.DataFrame, filters: list[str], swept_keys: list[str]) -> pd.DataFrame:
    """Keep the rows matching every `key=value`; numbers compare by value, hashes by prefix."""
    allowed = filter_keys(swept_keys)
    for text in filters:
        key, sep, value = text.partition("=")
        key, value = key.strip(), value.strip()
        if not sep or not key:
            raise UserError(
                f"--filter {text!r} is not key=value", hint="e.g. --filter backend=pytorch"
            )
        if key not in allowed:
            raise UserError(
                f"--filter: unknown key {key!r}", hint=f"filter on one of: {', '.join(allowed)}"
            )
        summary = summary[summary[key].map(lambda cell, v=value, k=key: _matches(cell, v, k))]
    return summary


def _matches(cell: object, value: str, key: str) -> bool:
    if cell is None or (pd.api.types.is_float(cell) and math.isnan(cell)):
        return value.lower() in ("none", "null", "")
    if key == "config_hash":
        return str(cell).startswith(value)
    if pd.api.types.is_bool(cell):
        return str(bool(cell)).lower() == value.lower()
    if pd.api.types.is_number(cell):
        try:
            return float(cell) == float(value)
        except ValueError:
            return False
    return str(cell) == value


def apply_sort(summary: pd.DataFrame, key: str | None) -> pd.DataFrame:
    """Sort by a column or alias; a leading '-' sorts descending; missing values go last."""
    if key is None:
        return summary
    descending = key.startswith("-")
    name = key.lstrip("-")
    column = SORT_ALIASES.get(name, name)
    if column not in summary.columns:
        raise UserError(
            f"--sort: unknown key {name!r}",
            hint=f"sort by one of: {', '.join(SORT_ALIASES)} (prefix '-' for descending), "
            "or any summary.csv column",
        )
    return summary.sort_values(column, ascending=not descending, na_position="last", kind="stable")
