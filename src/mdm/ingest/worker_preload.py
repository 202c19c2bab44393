"""Imported once by the ingest's forkserver, before it forks any worker process.

Every worker then starts with the ingest service and the standardizers imported and
the administrative-unit index built, shared copy-on-write with the forkserver.
Otherwise every worker of every file would do both itself, about 2 s of CPU each: a
manifest of ten province files with two workers would pay it twenty times.
"""

from __future__ import annotations

from mdm.services import ingest as _ingest  # noqa: F401  (the workers' entry points)
from mdm.standardize.units import get_index

get_index()
