"""``mdm synth``: write realistic legacy exports plus ground truth to a directory."""

from __future__ import annotations

import time
from enum import StrEnum
from pathlib import Path

import typer


class Profile(StrEnum):
    """``mdm.synth.PROFILES`` as a choice (a test keeps the two equal)."""

    standard = "standard"
    clerical = "clerical"
    household = "household"
    migration = "migration"
    sparse = "sparse"


def synth(
    out: Path = typer.Option(..., "--out", help="Directory to write (created if missing)."),
    provinces: int = typer.Option(5, "--provinces", min=1, help="Former provinces to simulate."),
    citizens: int = typer.Option(
        10_000, "--citizens", min=10, help="Citizen records per former province."
    ),
    organizations: int | None = typer.Option(
        None, "--organizations", min=1, help="Organization records per province [citizens/10]."
    ),
    dossiers: int | None = typer.Option(
        None, "--dossiers", min=1, help="Dossier records per province [citizens/2]."
    ),
    seed: int = typer.Option(0, "--seed", help="Same seed, same bytes."),
    portal: bool = typer.Option(
        True, "--portal/--no-portal", help="Also write the national portal's files."
    ),
    profile: Profile = typer.Option(
        Profile.standard,
        "--profile",
        help="Hazards to plant on top of the standard world (listed above).",
    ),
) -> None:
    """Generate synthetic legacy exports, a manifest and the ground truth.

    Writes DIR/data/*, DIR/mappings/*.yaml (copies of the shipped mappings),
    DIR/manifest.json (paths relative to DIR), DIR/truth.csv,
    DIR/expected_rejects.csv and DIR/hard_negatives.csv.

    \b
    Profiles (--profile; rates in docs/mappings.md):
      standard   the generator's usual world (the same bytes for a seed)
      clerical   hand-entry damage: birth year/day off, day-month swapped; ID
                 digits transposed or mistyped, leading zero lost, IDs with
                 spaces/dots; run-together and split syllables, dropped middle
                 names, ASCII capitals; phones 84/+84/grouped/11-digit;
                 P./Q./TP./T. abbreviations, no district, Tổ/Xóm/Khu phố
      household  families sharing an address and a phone, twins, a son with
                 his father's name, a relative's ID in a record (hard negatives)
      migration  movers between provinces, 2025-form addresses in legacy
                 systems, people in 3+ systems, a new CMND after moving
      sparse     year-only and 01/01 birth dates, rows without any ID, phone
                 or address
    For one seed every profile writes the standard run's rows about the same
    people; only how they are written changes (and, for household, the people).
    """
    from mdm.synth import SynthParams, generate

    started = time.perf_counter()
    try:
        manifest = generate(
            out,
            SynthParams(
                provinces=provinces,
                citizens=citizens,
                organizations=organizations,
                dossiers=dossiers,
                seed=seed,
                portal=portal,
                profile=profile.value,
            ),
        )
    except ValueError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    elapsed = time.perf_counter() - started
    for f in manifest["files"]:
        typer.echo(
            f"{f['rows']:>9} rows  {f['invalid_rows']:>5} invalid  "
            f"{f['format']:<7} {f['encoding']:<9} {f['source_system']:<24} {f['path']}"
        )
    s = manifest["summary"]
    typer.echo(
        f"{s['files']} files, {s['rows']} rows ({s['invalid_rows']} deliberately invalid), "
        f"{s['distinct_people']} people; cross-province duplicate rate "
        f"{s['citizen_cross_province_duplicate_rate']:.1%} (citizens), "
        f"{s['organization_cross_province_duplicate_rate']:.1%} (organizations); "
        f"hard negatives {s['hard_negative_pairs']}; {elapsed:.1f} s -> {out}"
    )
    if "hazards" in s:
        typer.echo(
            f"profile {profile.value}: " + ", ".join(f"{k} {v}" for k, v in s["hazards"].items())
        )
