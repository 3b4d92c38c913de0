"""Tables as interactive web pages for the report: sortable (click a header), filterable (the
search box) and paged, offline. The page embeds the DataTables bundle that ``itables`` ships
(about 1 MB, no CDN: the report works without a network), so the report shows the table itself
where a CSV would only download. A table of more than :data:`MAX_ROWS` rows shows a selection
of them (:func:`shown_rows`) and says which: a page of 100,000 rows would weigh ~40 MB in the
report and take over a minute to build; the CSV and Parquet files keep every row."""

from __future__ import annotations

import html
import os
import re

import numpy as np
import pandas as pd

from gdbench.io import write_text

__all__ = ["interactive_table", "write_interactive_table"]

#: Rows per page before paging (the search box and sorting work on every row).
PAGE_LENGTH = 25

#: The most rows a page holds (~0.4 kB and ~0.4 ms to build per row of the summary).
MAX_ROWS = 2000


def interactive_table(df: pd.DataFrame, title: str, note: str = "", max_rows: int = MAX_ROWS) -> str:
    """A self-contained HTML page holding ``df`` as an interactive table (floats with 6
    significant digits, empty cells for missing values): every row up to ``max_rows``, else the
    selection of :func:`shown_rows`, which the note then names."""
    import itables
    from itables import javascript
    from itables import options as itables_options

    df, which = shown_rows(df, max_rows)
    note = f"{note} {which}".strip()
    shown, numeric = _cells(df)
    bundle = javascript.generate_init_offline_itables_html(itables_options.dt_bundle)
    table = itables.to_html_datatable(
        shown,
        connected=False,
        maxBytes=0,  # every row: no downsampling
        pageLength=PAGE_LENGTH,
        # The search box, page size, counts and pages even on a short table: itables hides them
        # when the layout is its default one and the table fits one page (top2End makes it not).
        layout={
            "topStart": "pageLength",
            "topEnd": "search",
            "bottomStart": "info",
            "bottomEnd": "paging",
            "top2End": None,
        },
        scrollX=True,
        classes="display compact nowrap cell-border",
        showIndex=False,
        display_logo_when_loading=False,
        text_in_header_can_be_selected=False,  # a click on a header sorts (else only its icon does)
        table_id="gdbench_" + re.sub(r"\W+", "_", title).strip("_").lower(),  # the same page every time
        columnDefs=[{"targets": numeric, "render": itables.JavascriptFunction(_SORT_EMPTY_LAST)}] if numeric else [],
    )
    style = "body{font-family:sans-serif;margin:1em;font-size:13px}h3{margin:0 0 .3em}"
    return (
        f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
        f"<style>{style}</style></head><body><h3>{html.escape(title)}</h3><p>{html.escape(note)}</p>"
        f"{bundle}{table}</body></html>\n"
    )


#: Numeric columns sort by value, their empty cells (never converged, not defined) as
#: infinity: after every number in ascending order, as "never" reads for epochs.
_SORT_EMPTY_LAST = (
    "function (data, type) { if (type === 'sort' || type === 'type') "
    "{ return data === '' || data === null ? Infinity : parseFloat(data); } return data; }"
)


def shown_rows(df: pd.DataFrame, max_rows: int = MAX_ROWS) -> tuple[pd.DataFrame, str]:
    """At most ``max_rows`` rows of ``df`` and a sentence saying which (empty when all are
    shown): with a ``seed`` column, every row of the smallest seeds that fit (each setting's
    runs, fewer seeds); else, or when one seed's rows do not fit, rows spread evenly."""
    total = len(df)
    if total <= max_rows:
        return df, ""
    rest = f"(of {total:,}); every row is in the table's CSV and Parquet files."
    if "seed" in df:
        counts = df["seed"].value_counts().sort_index()
        fit = counts.index[counts.cumsum().to_numpy() <= max_rows]
        if len(fit):
            rows = df[df["seed"].isin(fit)]
            seeds = f"seed {fit[0]}" if len(fit) == 1 else f"the {len(fit)} smallest seeds ({fit[0]} to {fit[-1]})"
            return rows, f"Shown: the {len(rows):,} rows of {seeds} {rest}"
    picked = np.linspace(0, total - 1, max_rows).round().astype(int)
    return df.iloc[picked], f"Shown: {max_rows:,} rows spread evenly {rest}"


def _cells(df: pd.DataFrame) -> tuple[pd.DataFrame, list[int]]:
    """The table as shown (floats with 6 significant digits, missing values as empty cells,
    categoricals as text) and the positions of its numeric columns."""
    shown, numeric = df.copy(), []
    for i, col in enumerate(shown.columns):
        values = shown[col]
        if isinstance(values.dtype, pd.CategoricalDtype):
            shown[col] = values.astype(str)
        elif pd.api.types.is_bool_dtype(values.dtype) or values.dtype == object:
            shown[col] = values.astype(object).where(values.notna(), "")
        elif pd.api.types.is_numeric_dtype(values.dtype):
            numeric.append(i)
            floats = values.astype("float64").to_numpy(na_value=np.nan)
            spec = ".6g" if pd.api.types.is_float_dtype(values.dtype) else ".0f"
            shown[col] = ["" if v != v else format(v, spec) for v in floats.tolist()]
    return shown, numeric


def write_interactive_table(df: pd.DataFrame, path: str | os.PathLike[str], title: str, note: str = "") -> None:
    """:func:`interactive_table` written atomically to ``path``."""
    write_text(interactive_table(df, title, note), path)
