"""Fast paths and caches give exactly what the full computation gives."""

from __future__ import annotations

from datetime import date

from hypothesis import given, settings
from hypothesis import strategies as st

from mdm.standardize import addresses, dates, ids, names, phones
from mdm.standardize import text as text_module
from mdm.standardize.text import fold

_SEGMENTS = st.sampled_from(
    [
        "12 Lê Lợi", "Thôn 4", "Số 5", "ngõ 3", "Phường 1", "P. 12", "Q.1", "Quận 3",
        "Phường Bến Nghé", "Xã Tùng Bá", "Huyện Vị Xuyên", "Hà Giang", "TP.HCM", "Hà Nội",
        "Hoàn Kiếm", "Phường Hàng Bạc", "X. An Ninh", "H. Bình Lục", "Hà Nam", "Phố Huế",
        "Việt Nam", "100000", "", "Tân An", "Long An", "Thị xã Duy Tiên", "Phuong Tien Noi",
        "Tỉnh Ninh Bình", "Phường Ba Đình", "Đặc khu Phú Quốc", "An Giang",
    ]
)  # fmt: skip
_ADDRESSES = st.tuples(
    st.lists(_SEGMENTS, min_size=1, max_size=6), st.sampled_from([", ", ",", "; ", " | "])
).map(lambda p: p[1].join(p[0]))


@settings(max_examples=400, deadline=None)
@given(_ADDRESSES)
def test_tail_cache_reads_like_the_whole_text(text: str) -> None:
    addresses.clear_caches()
    expected, issues = addresses.parse_uncached(text)
    for _ in range(2):  # cold, then from the caches
        got, got_issues = addresses.standardize_address(text)
        if text.strip():
            assert got == expected and got_issues == issues


@settings(max_examples=200, deadline=None)
@given(st.text(alphabet="aăâbcdđeêghiklmnoôơuưyàáảãạằắẳẵặầấẩẫậèéẻẽẹềếểễệỳýỷỹỵ' -.", max_size=30))
def test_folded_full_name_is_fold_of_the_name(raw: str) -> None:
    parts, _ = names.parse_name(raw)
    if parts is not None:
        assert parts.folded_full == fold(parts.full)


@settings(max_examples=300, deadline=None)
@given(
    st.one_of(st.from_regex(r"\A\+?(84|0|00)?[0-9]{7,11}\Z"), st.text("0123456789+", max_size=14))
)
def test_phone_fast_path_agrees_with_the_full_parse(raw: str) -> None:
    if raw.strip():
        fast = phones._plain(raw.strip())
        if fast is not None:
            assert (fast, ()) == phones._phone.__wrapped__(raw.strip(), "phone")


@given(st.from_regex(r"\A[0-9]{9,12}\Z"))
def test_id_fast_paths_agree(raw: str) -> None:
    pid, moved, issues = ids.standardize_personal_id(raw)
    assert (pid, moved, tuple(issues)) == ids._personal_id.__wrapped__(raw)


@settings(max_examples=200, deadline=None)
@given(_ADDRESSES, st.sampled_from(["permanent_address", "hometown"]))
def test_compact_cache_gives_the_full_result_without_nones(text: str, field: str) -> None:
    addresses.clear_caches()
    full, issues = addresses.standardize_address(text, field)
    expected = None if full is None else {k: v for k, v in full.items() if v is not None}
    if expected is not None and expected.keys() <= {"ambiguous", "candidates"}:
        expected = None
    for _ in range(2):  # built, then copied from the cache
        got, got_issues = addresses.standardize_address_compact(text, field)
        assert got == expected and got_issues == issues
        assert list(got or ()) == list(expected or ())  # same key order
        if got is not None:
            got["candidates"].append({"commune_code": "x"})  # a caller's change stays its own
            got["street"] = "changed"


def test_compact_cache_is_bounded() -> None:
    addresses.clear_caches()
    for i in range(addresses._COMPACT_MAX + 10):
        addresses.standardize_address_compact(f"{i} Lê Lợi, Phường Bến Nghé, Quận 1, TP.HCM")
    assert len(addresses._COMPACT_CACHE) <= addresses._COMPACT_MAX
    addresses.clear_caches()


_DATE_SHAPES = st.one_of(
    st.from_regex(r"\A[0-9]{2}[/.\-][0-9]{2}[/.\-][0-9]{4}\Z"),
    st.from_regex(r"\A[0-9]{4}[/.\-][0-9]{2}[/.\-][0-9]{2}\Z"),
    st.builds(
        lambda d, sep: d.strftime(f"%d{sep}%m{sep}%Y"),
        st.dates(date(1850, 1, 1), date(2100, 12, 31)),
        st.sampled_from("/-."),
    ),
    st.builds(lambda d: d.isoformat(), st.dates(date(1850, 1, 1), date(2100, 12, 31))),
    st.text("0123456789/-. ", min_size=10, max_size=10),
)


@settings(max_examples=500, deadline=None)
@given(_DATE_SHAPES, st.dates(date(2000, 1, 1), date(2100, 12, 31)), st.booleans())
def test_date_fast_path_agrees_with_the_full_parse(raw: str, today: date, birth: bool) -> None:
    fast = dates._fast_full_date(raw, today)
    if fast is not None:
        assert (fast, ()) == dates._parse.__wrapped__(raw, "date_of_birth", birth, today)
    value, issues = dates.standardize_date(raw, "date_of_birth", birth=birth, today=today)
    expected = (
        dates._parse.__wrapped__(raw.strip(), "date_of_birth", birth, today)
        if (raw.strip())
        else (None, ())
    )
    assert (value, tuple(issues)) == expected


@given(
    st.one_of(st.from_regex(r"\A[0-9]{12}\Z"), st.text("0123456789", max_size=13)),
    st.one_of(st.none(), st.from_regex(r"\A[0-9]{4}(-[0-9]{2}(-[0-9]{2})?)?\Z")),
    st.sampled_from([None, "male", "female", "other"]),
)
def test_personal_id_consistency_agrees_with_its_parts(
    pid: str, dob: str | None, sex: str | None
) -> None:
    year = ids.personal_id_birth_year(pid)
    expected = year is None or (
        not (sex in ("male", "female") and ids.personal_id_sex(pid) != sex)
        and (dob is None or int(dob[:4]) == year)
    )
    assert ids.personal_id_consistent(pid, dob, sex) == expected


@settings(max_examples=300, deadline=None)
@given(
    st.lists(st.one_of(_DATE_SHAPES, st.text(max_size=70)), min_size=1, max_size=8),
    st.dates(date(2000, 1, 1), date(2100, 12, 31)),
    st.booleans(),
)
def test_memoized_dates_equal_uncached_and_cannot_be_changed(
    raws: list[str], today: date, birth: bool
) -> None:
    """standardize_date remembers each text's result: asked again it answers what the
    uncached computation answers, and a caller that changes the issue list it got does
    not change what the next caller gets."""

    def uncached(raw: str) -> tuple[str | None, list[object]]:
        value, issues = dates._standardize_text.__wrapped__(raw, "date_of_birth", birth, today)
        return value, list(issues)

    for raw in [*raws, *raws]:
        got = dates.standardize_date(raw, "date_of_birth", birth=birth, today=today)
        assert got == uncached(raw)
        got[1].append("changed by the caller")
        got[1].clear()
        assert dates.standardize_date(raw, "date_of_birth", birth=birth, today=today) == uncached(
            raw
        )


def _vn_score_whole_text(text: str) -> tuple[int, int]:
    """The score as computed before it was summed per token (the reference)."""
    import unicodedata

    tokens = text.split()
    valid = sum(1 for t in tokens if text_module._is_syllable(t.strip(".,;:()'\"-")))
    combining = len(text) - list(map(unicodedata.combining, text)).count(0)
    return valid, -(combining + sum(map(text_module._SUSPECT_CHARS.__contains__, text)))


_MOJIBAKE_ALPHABET = (
    "aăâbcdđeêghiklmnoôơuưyàáảãạằắẳẵặầấẩẫậèéẻẽẹềếểễệ NguyÔn V¨n ¸Ç¢ÃƯá»…\u0301\u0323"
    "\u00a0\u00ad\u0085\t\n\u2028\u3000\ufffd.,;'-"
)


@settings(max_examples=1000, deadline=None)
@given(st.one_of(st.text(alphabet=_MOJIBAKE_ALPHABET, max_size=40), st.text(max_size=40)))
def test_token_summed_vn_score_is_the_whole_text_score(text: str) -> None:
    """Scored token by token (each token once, cached), the text scores as a whole."""
    assert text_module._vn_score(text) == _vn_score_whole_text(text)
    assert text_module._vn_score(text) == _vn_score_whole_text(text)  # from the cache
