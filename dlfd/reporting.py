"""Reporting: averages over seeds, result tables and JSON files.

The metrics themselves live in :mod:`dlfd.metrics`; this module only summarises and stores
the records that :func:`dlfd.metrics.evaluate` returns. Results are reported as mean ± std
over seeds, never as single runs (docs/method.md, §5 D6 "single runs").
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, is_dataclass
from pathlib import Path, PurePath

import numpy as np
import torch

from .checks import is_number, require
from .fileio import atomic_write

__all__ = ["aggregate", "render_table", "render_plain", "save_json"]


def _is_value(v) -> bool:
    """A number to average or format: a finite one, or a NaN/inf standing for "no value"."""
    return is_number(v) or (isinstance(v, (float, np.floating)) and not math.isfinite(v))


def aggregate(records: list[dict]) -> dict:
    """Mean and spread of run records over seeds.

    Parameters
    ----------
    records : list of dict
        One record per seed, e.g. from :func:`dlfd.metrics.evaluate`.

    Returns
    -------
    dict
        ``n`` (the number of records) and, for every numeric key ``x``, ``x_mean`` and
        ``x_std``. The std is the sample std (ddof = 1), the spread a reader expects from a
        handful of seeds; with one value it is NaN, not a misleading 0. A key missing from
        some records, or NaN in some, is averaged over the records that have a value.
        Non-numeric keys are kept when all records agree (e.g. a method name) and dropped
        otherwise.

    Examples
    --------
    >>> aggregate([{"acc": 0.5, "method": "dlfd"}, {"acc": 0.7, "method": "dlfd"}])["acc_mean"]
    0.6

    References
    ----------
    docs/method.md, §5 D6 "single runs": report means over seeds, not single runs.
    """
    require(len(records) > 0, "aggregate() needs at least one record.")
    out: dict = {"n": len(records)}
    keys = list(dict.fromkeys(k for r in records for k in r))
    for k in keys:
        vals = [r[k] for r in records if k in r]
        if all(_is_value(v) for v in vals):
            a = np.asarray(vals, dtype=np.float64)
            a = a[~np.isnan(a)]
            out[f"{k}_mean"] = float(a.mean()) if len(a) else float("nan")
            out[f"{k}_std"] = float(a.std(ddof=1)) if len(a) > 1 else float("nan")
        elif len(vals) == len(records) and all(v == vals[0] for v in vals[1:]):
            out[k] = vals[0]
    return out


def _cell(row: dict, col: str, spec: str) -> str:
    """``mean ± std`` for an aggregated key, the value for a plain key, ``—`` when absent."""
    if f"{col}_mean" in row:
        m, s = row[f"{col}_mean"], row.get(f"{col}_std", float("nan"))
        if s is None or (isinstance(s, float) and np.isnan(s)):
            return format(m, spec)
        return f"{format(m, spec)} ± {format(s, spec)}"
    if col in row and row[col] is not None:
        v = row[col]
        return format(v, spec) if _is_value(v) else str(v)
    return "—"


def _grid(rows: dict, columns, fmt, name: str) -> tuple[list[str], list[list[str]]]:
    """The header and the body cells shared by both renderings."""
    cols = dict(columns) if isinstance(columns, dict) else {c: c for c in columns}
    specs = fmt if isinstance(fmt, dict) else {}
    header = [name, *cols.values()]
    body = [[str(label), *(_cell(row, c, specs.get(c, fmt if isinstance(fmt, str) else ".3f"))
                           for c in cols)]
            for label, row in rows.items()]
    return header, body


def render_table(rows: dict[str, dict], columns, fmt=".3f", name: str = "method") -> str:
    """A markdown table with one row per entry of ``rows``.

    Parameters
    ----------
    rows : dict of str to dict
        Row label → a record or an :func:`aggregate`.
    columns : list of str, or dict of str to str
        The keys to show, or key → column header.
    fmt : str or dict of str to str, default ".3f"
        A format spec for every column, or key → spec (missing keys use ".3f").
    name : str, default "method"
        The header of the label column.

    Returns
    -------
    str
        The table. Aggregated keys (``x_mean`` / ``x_std``) render as "mean ± std", a missing
        value as "—".

    Examples
    --------
    >>> print(render_table({"DLFD": {"test_acc": 0.62}}, ["test_acc"]))
    | method | test_acc |
    |---|---:|
    | DLFD | 0.620 |
    """
    header, body = _grid(rows, columns, fmt, name)
    rule = "|" + "|".join(["---"] + ["---:"] * (len(header) - 1)) + "|"
    lines = ["| " + " | ".join(header) + " |", rule]
    lines += ["| " + " | ".join(r) + " |" for r in body]
    return "\n".join(lines)


def render_plain(rows: dict[str, dict], columns, fmt=".3f", name: str = "method") -> str:
    """The same table as :func:`render_table`, as fixed-width text for logs and terminals.

    Parameters and return value are those of :func:`render_table`.

    Examples
    --------
    >>> print(render_plain({"DLFD": {"test_acc": 0.62}}, ["test_acc"]))
    method  test_acc
    ------  --------
    DLFD       0.620
    """
    header, body = _grid(rows, columns, fmt, name)
    widths = [max(len(r[i]) for r in [header, *body]) for i in range(len(header))]

    def line(r):
        return "  ".join(c.ljust(w) if i == 0 else c.rjust(w)
                         for i, (c, w) in enumerate(zip(r, widths)))

    return "\n".join([line(header), "  ".join("-" * w for w in widths), *map(line, body)])


def _jsonable(obj):
    """Plain JSON types; NaN/inf become null so the file is strict JSON that any reader parses."""
    if is_dataclass(obj) and not isinstance(obj, type):
        return _jsonable(asdict(obj))
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple, set)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, torch.Tensor):
        return _jsonable(obj.detach().cpu().tolist())
    if isinstance(obj, np.ndarray):
        return _jsonable(obj.tolist())
    if isinstance(obj, (np.bool_, bool)):
        return bool(obj)
    if isinstance(obj, (np.integer, int)):
        return int(obj)
    if isinstance(obj, (np.floating, float)):
        return float(obj) if math.isfinite(obj) else None
    if isinstance(obj, PurePath):
        return str(obj)
    if obj is None or isinstance(obj, str):
        return obj
    raise TypeError(f"save_json cannot store a {type(obj).__name__}.")


def save_json(obj, path, overwrite: bool = False) -> Path:
    """Write ``obj`` as indented, strict JSON, atomically.

    Parameters
    ----------
    obj : object
        Dicts, lists, tuples, sets, dataclasses, numbers (Python, NumPy), tensors, arrays,
        paths, strings and None, nested. NaN and inf are stored as null.
    path : str or Path
        Where to write; missing parent folders are created.
    overwrite : bool, default False
        An existing file is an error unless this is set, so a rerun never silently replaces
        earlier results.

    Returns
    -------
    Path
        The path written.

    Raises
    ------
    TypeError
        For a value JSON cannot store; nothing is written then.
    FileExistsError
        When ``path`` exists and ``overwrite`` is False.
    """
    # Serialise first, so that an unstorable object fails before anything touches the disk.
    text = json.dumps(_jsonable(obj), indent=2, allow_nan=False) + "\n"
    return atomic_write(path, lambda tmp: Path(tmp).write_text(text), overwrite=overwrite)
