"""Reference point-in-time joins in DuckDB, for the training-set tests.

  duckdb_reference.py prepare DIR   hist.csv, spine.csv -> hist.parquet, spine.parquet
  duckdb_reference.py compare DIR   features.json, out_<run>.parquet -> JSON report on stdout

Event-time runs use DuckDB's ASOF JOIN (after keeping, per entity and event time, only the
latest write: a correction). Runs with a write-time condition ("as served", known-at) cannot:
DuckDB refuses an ASOF JOIN with two inequalities, so they rank the joined versions with a
window instead (newest event time, then newest write, among versions written by the row's
known-at time).
"""

import json
import sys

import duckdb


def prepare(con, d):
    con.execute(f"""
        COPY (SELECT grp, entity, feature, event_time::BIGINT AS event_time,
                     write_time::BIGINT AS write_time, is_null::BOOLEAN AS is_null,
                     TRY_CAST(NULLIF(value, '') AS DOUBLE) AS value
              FROM read_csv('{d}/hist.csv', header = true, all_varchar = true))
        TO '{d}/hist.parquet' (FORMAT parquet)""")
    con.execute(f"""
        COPY (SELECT row_id::BIGINT AS row_id,
                     NULLIF(user_id, '') AS user_id,
                     TRY_CAST(NULLIF(shop_id, '') AS BIGINT) AS shop_id,
                     make_timestamp(ts_ms::BIGINT * 1000) AS ts,
                     make_timestamp(known_ms::BIGINT * 1000) AS known,
                     ts_ms::BIGINT AS ts_ms, known_ms::BIGINT AS known_ms,
                     TRY_CAST(NULLIF(label, '') AS DOUBLE) AS label
              FROM read_csv('{d}/spine.csv', header = true, all_varchar = true))
        TO '{d}/spine.parquet' (FORMAT parquet, ROW_GROUP_SIZE 1500)""")


def best_versions(con, f, mode):
    """The SQL of each spine row's chosen version of feature f: row_id, event_time, value, is_null."""
    where = f"grp = '{f['group']}' AND feature = '{f['feature']}'"
    key = f"CAST(s.{f['key']} AS VARCHAR)"
    if mode in ("event", "csv_event"):
        return f"""
            WITH hf AS (SELECT entity, event_time, value, is_null FROM hist WHERE {where}
                        QUALIFY row_number() OVER (PARTITION BY entity, event_time
                                                   ORDER BY write_time DESC) = 1)
            SELECT s.row_id, hf.event_time, hf.value, hf.is_null
            FROM spine s ASOF LEFT JOIN hf ON {key} = hf.entity AND s.ts_ms >= hf.event_time"""
    known = "s.ts_ms" if mode == "served" else "s.known_ms"
    event = "TRUE" if mode == "served" else "h.event_time <= s.ts_ms"
    return f"""
        SELECT row_id, event_time, value, is_null FROM (
            SELECT s.row_id, h.event_time, h.value, h.is_null,
                   row_number() OVER (PARTITION BY s.row_id
                                      ORDER BY h.event_time DESC, h.write_time DESC) AS rank
            FROM spine s JOIN (SELECT * FROM hist WHERE {where}) h
              ON {key} = h.entity AND {event} AND h.write_time <= {known})
        WHERE rank = 1"""


def compare(con, d):
    features = json.load(open(f"{d}/features.json"))
    con.execute(f"CREATE TABLE hist AS SELECT * FROM read_parquet('{d}/hist.parquet')")
    con.execute(f"CREATE TABLE spine AS SELECT * FROM read_parquet('{d}/spine.parquet')")
    report = {}
    for run in features["runs"]:
        mode = run["mode"]
        con.execute(f"""CREATE OR REPLACE TABLE q AS SELECT * FROM
                        read_parquet('{d}/out_{run['name']}.parquet', file_row_number = true)""")
        rows = con.execute("SELECT count(*) FROM q").fetchone()[0]
        # The spine's columns pass through unchanged, in the spine's order.
        passed = con.execute("""
            SELECT count(*) FROM q JOIN spine s USING (row_id)
            WHERE q.file_row_number <> q.row_id
               OR q.label IS DISTINCT FROM s.label OR q.user_id IS DISTINCT FROM s.user_id
               OR q.shop_id IS DISTINCT FROM s.shop_id OR q.ts_ms <> s.ts_ms""").fetchone()[0]
        mismatches, examples, statuses = 0, [], {}
        for f in features["features"]:
            ttl = f["ttl_ms"]
            expired = f"(s.ts_ms - b.event_time > {ttl})" if ttl is not None else "FALSE"
            sql = f"""
                WITH b AS ({best_versions(con, f, mode)}),
                r AS (SELECT s.row_id, s.ts_ms,
                        CASE WHEN b.event_time IS NULL THEN 'not_found'
                             WHEN {expired} THEN 'expired'
                             WHEN b.is_null THEN 'null' ELSE 'present' END AS status,
                        b.value, b.event_time
                      FROM spine s LEFT JOIN b USING (row_id))
                SELECT r.row_id, r.status, r.value, q.{f['name']}__status AS got_status,
                       CAST(q.{f['name']} AS DOUBLE) AS got
                FROM r JOIN q USING (row_id)
                WHERE r.status <> q.{f['name']}__status
                   OR (CASE WHEN r.status = 'present' THEN r.value END)
                      IS DISTINCT FROM CAST(q.{f['name']} AS DOUBLE)
                ORDER BY r.row_id"""
            bad = con.execute(sql).fetchall()
            mismatches += len(bad)
            examples += [[f["name"]] + list(map(str, x)) for x in bad[:5]]
            for status, n in con.execute(
                    f"SELECT {f['name']}__status, count(*) FROM q GROUP BY 1").fetchall():
                statuses[status] = statuses.get(status, 0) + n
        report[run["name"]] = {"rows": rows, "mismatches": mismatches, "passthrough_mismatches": passed,
                               "examples": examples[:10], "statuses": statuses}
    print(json.dumps(report))


def main():
    action, d = sys.argv[1], sys.argv[2]
    con = duckdb.connect()
    if action == "prepare":
        prepare(con, d)
    else:
        compare(con, d)


if __name__ == "__main__":
    main()
