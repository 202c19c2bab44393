"""Fast paths and caches give exactly what the full computation gives."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from mdm.standardize import addresses, ids, names, phones
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
