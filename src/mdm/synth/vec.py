"""Column-wise string building for the generator: numpy decides, pyarrow assembles.

Every text column is built from small precomputed string pools: numpy computes an
index (or a null mask) per row, ``take`` gathers the pool entries and
``binary_join_element_wise`` glues the pieces, all in C. Python only touches the
few rows that get a per-row transformation (a typo, mojibake) via :func:`patch`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc

Mask = npt.NDArray[np.bool_]
Ints = npt.NDArray[np.int64]
Str = Any  # a pyarrow StringArray (pyarrow ships no type stubs)

_PAD2 = pa.array([f"{k:02d}" for k in range(100)])
_NUM = pa.array([str(k) for k in range(1000)])


def pool(values: Sequence[str | None]) -> Str:
    return pa.array(list(values), type=pa.string())


def take(values: Str, idx: npt.ArrayLike, null: Mask | None = None) -> Str:
    """``values[idx]`` per row; rows where ``null`` is set become null."""
    arr = np.asarray(idx, dtype=np.int64)
    if null is not None and null.any():
        arr = np.where(null, 0, arr)
        return values.take(pa.array(arr, mask=null))
    return values.take(pa.array(arr))


def join(*parts: Any, sep: str = "") -> Str:
    """Concatenate per row (plain ``str`` arguments are constants); any null part → null."""
    return pc.binary_join_element_wise(*parts, sep)


def join_skip(*parts: Any, sep: str) -> Str:
    """Concatenate per row skipping null parts (``"a", None, "b"`` → ``"a b"``)."""
    return pc.binary_join_element_wise(*parts, sep, null_handling="skip")


def where(mask: Mask, a: Any, b: Any) -> Str:
    return pc.if_else(pa.array(mask), a, b)


def nullify(arr: Str, mask: Mask) -> Str:
    if not mask.any():
        return arr
    return pc.if_else(pa.array(mask), pa.scalar(None, pa.string()), arr)


def patch(arr: Str, mask: Mask, fn: Callable[[list[Any], Ints], list[Any]]) -> Str:
    """Replace the masked rows by ``fn(their values, their row numbers)``."""
    if not mask.any():
        return arr
    pm = pa.array(mask)
    new = fn(arr.filter(pm).to_pylist(), np.flatnonzero(mask))
    return pc.replace_with_mask(arr, pm, pa.array(new, type=arr.type))


def each(fn: Callable[[str], str]) -> Callable[[list[Any], Ints], list[Any]]:
    """Lift a ``str -> str`` function to the masked values of :func:`patch`, keeping nulls."""

    def run(values: list[Any], rows: Ints) -> list[Any]:
        return [None if v is None else fn(v) for v in values]

    return run


def upper(arr: Str, mask: Mask) -> Str:
    """Upper-case the masked rows (Unicode case mapping, as ``str.upper`` for Vietnamese)."""
    if not mask.any():
        return arr
    if mask.all():
        return pc.utf8_upper(arr)
    pm = pa.array(mask)
    return pc.replace_with_mask(arr, pm, pc.utf8_upper(arr.filter(pm)))


def slice_text(arr: Str, start: int, stop: int = 1 << 20) -> Str:
    return pc.utf8_slice_codeunits(arr, start, stop)


def digits(v: npt.ArrayLike, width: int = 0) -> Str:
    """Decimal text of non-negative ints, zero-padded to ``width``."""
    arr = np.asarray(v, dtype=np.int64)
    if width == 2 and arr.size and int(arr.max(initial=0)) < 100:
        return _PAD2.take(pa.array(arr))
    if width <= 1 and arr.size and int(arr.max(initial=0)) < 1000:
        return _NUM.take(pa.array(arr))
    s = pc.cast(pa.array(arr), pa.string())
    return pc.utf8_lpad(s, width, "0") if width > 1 else s


def fmt_date(style: str, y: Ints, m: Ints, d: Ints) -> Str:
    """Dates in one of the generator's written styles (see ``generate.DATE_STYLES``)."""
    if style == "dmy":
        return join(digits(d, 2), digits(m, 2), digits(y, 4), sep="/")
    if style == "dmy_nopad":
        return join(digits(d), digits(m), digits(y, 4), sep="/")
    if style == "dmy_dash":
        return join(digits(d, 2), digits(m, 2), digits(y, 4), sep="-")
    if style == "iso":
        return join(digits(y, 4), digits(m, 2), digits(d, 2), sep="-")
    if style == "ymd8":
        return join(digits(y, 4), digits(m, 2), digits(d, 2))
    raise ValueError(style)


def civil(minutes: Ints) -> tuple[Ints, Ints, Ints, Ints, Ints]:
    """(year, month, day, hour, minute) of minutes since 1970-01-01 00:00."""
    t = minutes.astype("datetime64[m]")
    day = t.astype("datetime64[D]")
    month = day.astype("datetime64[M]")
    y = month.astype("datetime64[Y]").astype(np.int64) + 1970
    mo = month.astype(np.int64) % 12 + 1
    d = (day - month.astype("datetime64[D]")).astype(np.int64) + 1
    mod = (t - day.astype("datetime64[m]")).astype(np.int64)
    return y, mo, d, mod // 60, mod % 60


def codes(values: npt.ArrayLike, prefix: str, width: int) -> Str:
    """``prefix`` + zero-padded number per row (``P00000042``)."""
    return join(prefix, digits(values, width))
