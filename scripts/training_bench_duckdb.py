"""DuckDB's side of scripts/training-set-bench.sh.

  training_bench_duckdb.py prepare DIR      *.csv -> user_hist.parquet, shop_hist.parquet, spine.parquet
  training_bench_duckdb.py asof DIR OUT     the training set by ASOF JOIN (event time, 7-day TTL) -> OUT
  training_bench_duckdb.py check DIR A B    counts cells where the training sets A and B differ
"""

import sys

import duckdb


def prepare(con, d):
    for g, (a, b) in (("user", ("clicks", "score")), ("shop", ("orders", "rating"))):
        key = "entity" if g == "user" else "entity::BIGINT AS entity"
        con.execute(f"""
            COPY (SELECT {key}, make_timestamp(event_time * 1000) AS event_time,
                         make_timestamp(write_time * 1000) AS write_time, {a}, {b}
                  FROM read_csv('{d}/{g}_hist.csv', header = true))
            TO '{d}/{g}_hist.parquet' (FORMAT parquet)""")
    con.execute(f"""
        COPY (SELECT row_id, user_id, shop_id, make_timestamp(ts * 1000) AS ts, label
              FROM read_csv('{d}/spine.csv', header = true))
        TO '{d}/spine.parquet' (FORMAT parquet)""")


def asof(con, d, out):
    ttl = "INTERVAL 7 DAY"
    con.execute(f"""
        COPY (
            SELECT s.*,
                   CASE WHEN s.ts - u.event_time <= {ttl} THEN u.clicks END AS clicks,
                   CASE WHEN s.ts - u.event_time <= {ttl} THEN u.score END AS score,
                   CASE WHEN s.ts - m.event_time <= {ttl} THEN m.orders END AS orders,
                   CASE WHEN s.ts - m.event_time <= {ttl} THEN m.rating END AS rating
            FROM read_parquet('{d}/spine.parquet') s
            ASOF LEFT JOIN read_parquet('{d}/user_hist.parquet') u
                ON s.user_id = u.entity AND s.ts >= u.event_time
            ASOF LEFT JOIN read_parquet('{d}/shop_hist.parquet') m
                ON s.shop_id = m.entity AND s.ts >= m.event_time
        ) TO '{out}' (FORMAT parquet)""")


def check(con, a, b):
    diff = con.execute(f"""
        SELECT count(*) FROM read_parquet('{a}') x JOIN read_parquet('{b}') y USING (row_id)
        WHERE x.clicks IS DISTINCT FROM y.clicks OR x.score IS DISTINCT FROM y.score
           OR x.orders IS DISTINCT FROM y.orders OR x.rating IS DISTINCT FROM y.rating""").fetchone()[0]
    rows = con.execute(f"SELECT count(*) FROM read_parquet('{a}')").fetchone()[0]
    print(f"{rows} rows, {diff} rows differ")
    return diff


def main():
    con = duckdb.connect()
    action = sys.argv[1]
    if action == "prepare":
        prepare(con, sys.argv[2])
    elif action == "asof":
        asof(con, sys.argv[2], sys.argv[3])
    else:
        sys.exit(1 if check(con, sys.argv[3], sys.argv[4]) else 0)


if __name__ == "__main__":
    main()
