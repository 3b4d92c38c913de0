"""A table as CSV text, byte for byte what ``DataFrame.to_csv(index=False)`` writes, built column by
column with pyarrow's compute kernels instead of pandas' per-cell formatter.

pandas formats each float with numpy's ``str`` (~2 µs a cell): the 100,000-run summary's 1.6
million floats cost ~3 s of CPU in the merge job, on the workflow's critical path. pyarrow
formats floats with the same shortest round-trip digits but its own notation (``0.00007`` for
``7e-05``, ``1`` for ``1.0``, ``1e+10`` for ``10000000000.0``). :func:`frame_csv` keeps arrow's
text where the two notations agree (plain decimals from 1e-4 up to 1e10) and asks Python's
``repr`` (what pandas writes) for the rest, so the file is the one pandas would write.

:func:`frame_csv` answers ``None`` for a table it cannot write that way (a column type other than
float64, integer, bool, categorical or text; a text value with a carriage return; a single column
or no rows, where the csv module's quoting rules differ); :func:`gdbench.io.write_csv` then uses
pandas.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd
    import pyarrow as pa

#: Characters that make the csv module (QUOTE_MINIMAL, "\n" line ends) quote a field.
_QUOTED = (",", '"', "\n")


def _field(value: str) -> str:
    """``value`` as the csv module writes it: quoted (inner quotes doubled) when it must be."""
    if any(char in value for char in _QUOTED):
        return '"' + value.replace('"', '""') + '"'
    return value


def _plain_texts(values: list[Any]) -> list[str] | None:
    """Text values as fields; ``None`` when one is not a string or holds a carriage return."""
    if not all(isinstance(value, str) and "\r" not in value for value in values):
        return None
    return [_field(value) for value in values]


def float_texts(values: np.ndarray) -> pa.Array:
    """float64 ``values`` as pandas writes them: ``repr`` of each, an empty field for NaN."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    array = pa.array(values)
    text = pc.cast(array, pa.string())
    # Arrow writes a plain decimal (no exponent) for 1e-6 <= |v| < 1e10; repr does for 1e-4 <= |v| < 1e16.
    plain = pc.and_(pc.invert(pc.match_substring(text, "e")), pc.greater_equal(pc.abs(array), 1e-4))
    dotted = pc.match_substring(text, ".")
    whole = pc.and_(pc.and_(plain, pc.invert(dotted)), pc.is_finite(array))  # arrow "2000", repr "2000.0"
    text = pc.if_else(whole, pc.binary_join_element_wise(text, ".0", ""), text)
    other = pc.invert(pc.or_(pc.and_(plain, dotted), whole))  # NaN, inf, zero, tiny or huge: repr's own notation
    rows = np.flatnonzero(other.to_numpy(zero_copy_only=False))
    if len(rows):
        reprs = ["" if value != value else repr(value) for value in values[rows].tolist()]
        text = pc.replace_with_mask(text, other, pa.array(reprs, pa.string()))
    return text


def column_texts(column: pd.Series) -> pa.Array | None:
    """One column's fields as an arrow string array; ``None`` for a type :func:`frame_csv` leaves to pandas."""
    import numpy as np
    import pandas as pd
    import pyarrow as pa
    import pyarrow.compute as pc

    dtype = column.dtype
    if isinstance(dtype, pd.CategoricalDtype):
        categories = dtype.categories.tolist()
        if not all(isinstance(c, (str, int)) and not isinstance(c, bool) for c in categories):
            return None
        fields = _plain_texts([str(c) for c in categories])
        if fields is None:
            return None
        codes = column.cat.codes.to_numpy()
        return pc.fill_null(pc.take(pa.array(fields, pa.string()), pa.array(codes, mask=codes < 0)), "")
    if isinstance(dtype, pd.BooleanDtype) or dtype == np.bool_:
        return pc.fill_null(pc.if_else(pa.array(column), "True", "False"), "")
    if dtype is np.dtype(object) or isinstance(dtype, pd.StringDtype):  # pandas 3 reads text as its "str" dtype
        fields = _plain_texts(column.tolist())
        return None if fields is None else pa.array(fields, pa.string())
    if isinstance(dtype, pd.api.extensions.ExtensionDtype):
        if not pd.api.types.is_integer_dtype(dtype):
            return None
        return pc.fill_null(pc.cast(pa.array(column), pa.string()), "")
    if dtype == np.float64:
        return float_texts(column.to_numpy())
    if dtype.kind in "iu":
        return pc.cast(pa.array(column.to_numpy()), pa.string())
    return None


def frame_csv(table: pd.DataFrame) -> str | None:
    """``table.to_csv(index=False)``'s text, or ``None`` where this module leaves it to pandas."""
    import pyarrow.compute as pc

    if len(table) == 0 or table.shape[1] < 2 or not table.columns.is_unique:
        return None
    header = _plain_texts([str(name) for name in table.columns])
    if header is None:
        return None
    columns = []
    for name in table.columns:
        texts = column_texts(table[name])
        if texts is None:
            return None
        columns.append(texts)
    lines = pc.binary_join_element_wise(*columns, ",")
    return ",".join(header) + "\n" + "\n".join(lines.to_pylist()) + "\n"
