"""A tiny generator of *standardized* citizen records with known truth.

Stand-in until ``mdm synth`` lands: it produces what the standardizers would output
(see the brief's standardized dict), with the duplicates' variations DOMAIN.md
describes: Văn/Thị dropped, regional surname spelling, typos, swapped day/month,
year-only dates and 01/01 placeholders, CMND in one system and the 12-digit ID in
another, legacy vs 2025 address forms, missing phones. It also plants twins and
same-name parent/child pairs, which must never be auto-linked.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

SURNAMES = [
    ("Nguyễn", 38),
    ("Trần", 11),
    ("Lê", 9.5),
    ("Phạm", 7),
    ("Hoàng", 3),
    ("Huỳnh", 2),
    ("Phan", 4.5),
    ("Vũ", 2.5),
    ("Võ", 1.5),
    ("Đặng", 2),
    ("Bùi", 2),
    ("Đỗ", 1.4),
    ("Hồ", 1.3),
    ("Ngô", 1.3),
    ("Dương", 1),
    ("Lý", 0.5),
    ("Đinh", 0.6),
    ("Trương", 0.6),
    ("Mai", 0.4),
    ("Cao", 0.4),
    ("Lâm", 0.3),
    ("Tạ", 0.2),
    ("Châu", 0.2),
    ("Quách", 0.1),
]
MALE_GIVEN = [
    "An",
    "Bình",
    "Cường",
    "Dũng",
    "Đức",
    "Hải",
    "Hùng",
    "Huy",
    "Khánh",
    "Long",
    "Minh",
    "Nam",
    "Phong",
    "Quang",
    "Sơn",
    "Tài",
    "Thắng",
    "Thành",
    "Trung",
    "Tuấn",
    "Việt",
    "Vinh",
    "Hiếu",
    "Hoàng",
    "Kiên",
    "Lâm",
    "Lộc",
    "Nghĩa",
    "Phúc",
    "Quân",
    "Tâm",
    "Thịnh",
    "Toàn",
]
FEMALE_GIVEN = [
    "Anh",
    "Chi",
    "Dung",
    "Giang",
    "Hà",
    "Hạnh",
    "Hằng",
    "Hoa",
    "Hòa",
    "Hương",
    "Lan",
    "Linh",
    "Mai",
    "My",
    "Nga",
    "Ngọc",
    "Nhung",
    "Oanh",
    "Phương",
    "Quỳnh",
    "Thảo",
    "Thủy",
    "Trang",
    "Trinh",
    "Uyên",
    "Vân",
    "Yến",
    "Hiền",
    "Huyền",
    "Loan",
    "Ly",
    "Nhi",
    "Thu",
    "Tuyết",
]
MALE_MIDDLE = [
    "Văn",
    "Văn",
    "Văn",
    "Đức",
    "Minh",
    "Quốc",
    "Hữu",
    "Công",
    "Thanh",
    "Xuân",
    "Văn Minh",
]
FEMALE_MIDDLE = ["Thị", "Thị", "Thị", "Ngọc", "Thu", "Thanh", "Minh", "Thị Thu", "Hồng", "Kim"]
PROVINCES = [
    f"{c:02d}"
    for c in (
        1,
        4,
        8,
        11,
        12,
        14,
        15,
        19,
        20,
        22,
        24,
        25,
        31,
        33,
        37,
        38,
        40,
        42,
        44,
        46,
        48,
        51,
        52,
        56,
        66,
        68,
        75,
        79,
        80,
        82,
        86,
        91,
        92,
        96,
    )
]
STREETS = [
    "Lê Lợi",
    "Trần Hưng Đạo",
    "Nguyễn Huệ",
    "Hai Bà Trưng",
    "Lý Thường Kiệt",
    "Phan Chu Trinh",
    "Quang Trung",
    "Hùng Vương",
    "Điện Biên Phủ",
    "Lê Duẩn",
]
SOURCES = ["hn-legacy-2019", "hcm-legacy-2020", "national-portal", "bhxh", "vneid"]
VARIANT = {"Hoàng": "Huỳnh", "Huỳnh": "Hoàng", "Vũ": "Võ", "Võ": "Vũ"}


@dataclass
class Person:
    entity: int
    surname: str
    middle: str
    given: str
    sex: str
    dob: tuple[int, int, int]
    pid: str | None
    cmnd: str | None
    phone: str | None
    email: str | None
    province: str
    commune: str
    legacy_commune: str
    street: str
    birth_province: str


def _pick(rng: random.Random, weighted: list[tuple[str, float]]) -> str:
    return rng.choices([w for w, _ in weighted], [p for _, p in weighted])[0]


def _person(rng: random.Random, entity: int) -> Person:
    sex = rng.choice(["male", "female"])
    year = rng.randint(1940, 2010)
    province = rng.choice(PROVINCES)
    century = 0 if year < 2000 else 2
    pid = (
        f"{rng.randint(1, 96):03d}{century + (sex == 'female')}{year % 100:02d}"
        f"{rng.randint(0, 999999):06d}"
    )
    return Person(
        entity=entity,
        surname=_pick(rng, SURNAMES),
        middle=rng.choice(MALE_MIDDLE if sex == "male" else FEMALE_MIDDLE),
        given=rng.choice(MALE_GIVEN if sex == "male" else FEMALE_GIVEN),
        sex=sex,
        dob=(year, rng.randint(1, 12), rng.randint(1, 28)),
        pid=pid if rng.random() < 0.85 else None,
        cmnd=f"{rng.randint(10, 38)}{rng.randint(0, 9_999_999):07d}"
        if rng.random() < 0.6
        else None,
        phone=f"+849{rng.randint(0, 99_999_999):08d}" if rng.random() < 0.7 else None,
        email=f"u{entity}@example.vn" if rng.random() < 0.2 else None,
        province=province,
        commune=f"{rng.randint(0, 32_000):05d}",
        legacy_commune=f"{rng.randint(0, 32_000):05d}",
        street=f"{rng.randint(1, 300)} {rng.choice(STREETS)}",
        birth_province=rng.choice(PROVINCES),
    )


def _typo(rng: random.Random, text: str) -> str:
    if len(text) < 3:
        return text
    i = rng.randint(1, len(text) - 2)
    if rng.random() < 0.5:
        return text[:i] + text[i + 1] + text[i] + text[i + 2 :]
    return text[:i] + rng.choice("aeiounhtg") + text[i + 1 :]


def _record(rng: random.Random, p: Person, variant: bool) -> dict[str, Any]:
    surname, middle, given = p.surname, p.middle, p.given
    year, month, day = p.dob
    dob: str | None = f"{year:04d}-{month:02d}-{day:02d}"
    pid, cmnd, phone = p.pid, p.cmnd, p.phone
    legacy = False
    if variant:
        r = rng.random
        if r() < 0.25 and middle.split()[0] in ("Văn", "Thị"):
            middle = " ".join(middle.split()[1:])
        if r() < 0.03 and surname in VARIANT:
            surname = VARIANT[surname]
        if r() < 0.08:
            given = _typo(rng, given)
        if r() < 0.05 and day <= 12:
            dob = f"{year:04d}-{day:02d}-{month:02d}"
        elif r() < 0.1:
            dob = f"{year:04d}"
        elif r() < 0.05:
            dob = f"{year:04d}-01-01"
        elif r() < 0.03:
            dob = None
        if r() < 0.35:
            pid = None  # legacy system: CMND only
        elif r() < 0.02 and pid:
            pid = _typo(rng, pid)
        if r() < 0.5:
            cmnd = None
        if r() < 0.4:
            phone = None
        legacy = r() < 0.5
    name = " ".join(part for part in (surname, middle, given) if part)
    address = {
        "province_code": p.province,
        "commune_code": None if legacy else p.commune,
        "street": p.street if rng.random() < 0.7 else None,
        "legacy_province_code": None,
        "legacy_district_code": None,
        "legacy_commune_code": p.legacy_commune if legacy else None,
        "ambiguous": False,
        "candidates": [],
    }
    if legacy and rng.random() < 0.8:
        address["commune_code"] = p.commune  # most legacy communes map to one new one
    std: dict[str, Any] = {
        "full_name": name,
        "sex": p.sex,
        "permanent_address": address,
        "place_of_birth": {"province_code": p.birth_province},
        "nationality": "VN",
    }
    if dob:
        std["date_of_birth"] = dob
    if pid:
        std["personal_id"] = pid
    if cmnd:
        std["old_id_number"] = cmnd
    if phone:
        std["phone"] = phone
    if p.email:
        std["email"] = p.email
    return std


@dataclass
class Generated:
    records: list[tuple[str, str, dict[str, Any]]]
    truth: dict[str, int]  # unique_id → entity
    twins: list[tuple[str, str]]
    parent_child: list[tuple[str, str]]


def iter_people(
    n_records: int, seed: int = 7, dup_rate: float = 0.3
) -> Iterator[tuple[str, str, dict[str, Any], int]]:
    """Stream of (unique_id, source_system, standardized, entity); flat memory."""
    rng = random.Random(seed)
    made = 0
    entity = 0
    while made < n_records:
        person = _person(rng, entity)
        copies = 1 + (rng.random() < dup_rate) + (rng.random() < dup_rate / 3)
        for c in range(copies):
            if made >= n_records:
                break
            yield f"r{made}", rng.choice(SOURCES), _record(rng, person, variant=c > 0), entity
            made += 1
        entity += 1


def generate(n_records: int, seed: int = 7, dup_rate: float = 0.3, n_twins: int = 20) -> Generated:
    rng = random.Random(seed + 1)
    records: list[tuple[str, str, dict[str, Any]]] = []
    truth: dict[str, int] = {}
    for uid, source, std, entity in iter_people(n_records, seed, dup_rate):
        records.append((uid, source, std))
        truth[uid] = entity
    twins: list[tuple[str, str]] = []
    parent_child: list[tuple[str, str]] = []
    next_entity = max(truth.values(), default=0) + 1
    for i in range(n_twins):
        base = _person(rng, next_entity)
        # twins: same surname, middle, dob, address, phone; different given name and ID
        twin = Person(
            **{
                **base.__dict__,
                "entity": next_entity + 1,
                "given": rng.choice([g for g in MALE_GIVEN if g != base.given]),
                "pid": f"{base.pid[:6]}{rng.randint(0, 999999):06d}" if base.pid else None,
                "cmnd": None,
            }
        )
        # parent and child with the same full name and address, 25+ years apart
        child = Person(
            **{
                **base.__dict__,
                "entity": next_entity + 2,
                # 28 years younger, or older when that would be born after 2015
                # (a child born 10 years after its parent is no parent/child pair)
                "dob": (
                    base.dob[0] + 28 if base.dob[0] + 28 <= 2015 else base.dob[0] - 28,
                    base.dob[1] % 12 + 1,
                    base.dob[2],
                ),
                "pid": f"{base.pid[:4]}{rng.randint(0, 99999999):08d}" if base.pid else None,
                "cmnd": None,
                "phone": None,
            }
        )
        ids = []
        for person in (base, twin, child):
            uid = f"t{i}_{person.entity}"
            records.append((uid, rng.choice(SOURCES), _record(rng, person, variant=False)))
            truth[uid] = person.entity
            ids.append(uid)
        twins.append((ids[0], ids[1]))
        parent_child.append((ids[0], ids[2]))
        next_entity += 3
    return Generated(records, truth, twins, parent_child)


def trained_citizen_rules(tmp: Path) -> Path:
    """``tmp`` as a rules directory: the shipped citizen rules with smaller training
    samples and a model trained on 3,000 synthetic citizens, saved where ``mdm match
    train`` saves it (for ``rules_dir=`` or ``MDM_MATCHING_RULES_DIR``)."""
    import duckdb
    import yaml

    from mdm.matching.rules import Training, load_rules
    from mdm.matching.training import train

    repo_rules = Path(__file__).resolve().parents[2] / "matching_rules"
    doc = yaml.safe_load((repo_rules / "citizen.yaml").read_text(encoding="utf-8"))
    doc["training"] = {**doc.get("training", {}), "u_max_pairs": 3e5, "em_max_pairs": 2e5}
    (tmp / "citizen.yaml").write_text(yaml.safe_dump(doc, allow_unicode=True), "utf-8")
    rules = load_rules("citizen", tmp).model_copy(
        update={"training": Training(u_max_pairs=3e5, em_max_pairs=2e5, seed=42)}
    )
    con = duckdb.connect()
    con.execute("SET threads = 2")
    try:
        trained = train(rules, generate(3000, seed=11, n_twins=15).records, con=con)
    finally:
        con.close()
    (tmp / "models").mkdir()
    trained.save_model(tmp / "models" / "citizen.json")
    return tmp
