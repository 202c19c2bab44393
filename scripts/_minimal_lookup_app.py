"""The baseline of ``bench_api.py``: the least a FastAPI + psycopg point lookup can do.

One pooled connection per request, one indexed ``SELECT`` on ``entities`` by
canonical ID, the row as JSON. No auth, no audit, no masking, no redirects.
"""

from __future__ import annotations

import os
from typing import Any

from fastapi import FastAPI, HTTPException
from psycopg_pool import ConnectionPool

pool = ConnectionPool(
    os.environ["BENCH_PG_DSN"], min_size=4, max_size=int(os.environ.get("BENCH_POOL", "16"))
)
app = FastAPI()


@app.get("/entities/{canonical_id}")
def lookup(canonical_id: str) -> dict[str, Any]:
    with pool.connection() as conn:
        row = conn.execute(
            "SELECT canonical_id, entity_type, status, version, attributes, provenance, "
            "updated_at FROM entities WHERE canonical_id = %s",
            (canonical_id,),
        ).fetchone()
    if row is None:
        raise HTTPException(404)
    return {
        "canonical_id": row[0],
        "entity_type": row[1],
        "status": row[2],
        "version": row[3],
        "attributes": row[4],
        "provenance": row[5],
        "valid_from": row[6].isoformat(),
    }
