#!/usr/bin/env bash
# Runs Quiver's comparison benchmarks in one go and prints the ratios next to the targets of
# PRODUCT.md. See docs/BENCHMARKS.md.
#
#   scripts/bench-compare.sh [--quick | --full] [--with-10m] [--dir DIR] [--results DIR]
#                            [--rounds N] [--skip get,batch,put,fio,rocksdb,redis,defrag,restart]
#
# --quick (default): 1M records, 3 s phases, 3 alternating rounds: about 15 minutes, plus the
#   one-time RocksDB build (10-15 minutes on 2 cores) on the first run.
# --full: 2M records, 10 s phases, 5 rounds, larger defragmentation store; about 45 minutes.
# --with-10m: also the 10-million-record restart and index RAM measurement (~5 extra minutes
#   and ~11 GB of disk; opt-in).
# --micro: also the criterion microbenchmarks (cargo bench -p quiver-benches), ~5 minutes.
# Every store file lives in --dir (default /var/tmp/quiver-bench); fio measures the same
# files and directory. Raw reports go to --results (default /var/tmp/quiver-bench-results/<timestamp>).
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
MODE=quick
WITH_10M=0
MICRO=0
DIR=/var/tmp/quiver-bench
RESULTS=""
ROUNDS=""
SKIP=""
REDIS_PORT=${REDIS_PORT:-6391}
QUIVERD_PORT=${QUIVERD_PORT:-7391}

while [ $# -gt 0 ]; do
    case "$1" in
        --quick) MODE=quick ;;
        --full) MODE=full ;;
        --with-10m) WITH_10M=1 ;;
        --micro) MICRO=1 ;;
        --dir) DIR=$2; shift ;;
        --results) RESULTS=$2; shift ;;
        --rounds) ROUNDS=$2; shift ;;
        --skip) SKIP=$2; shift ;;
        -h|--help) sed -n '2,17p' "$0"; exit 0 ;;
        *) echo "bench-compare: unknown flag $1 (see --help)" >&2; exit 2 ;;
    esac
    shift
done

if [ "$MODE" = quick ]; then
    RECORDS=1000000; SECS=3; R=${ROUNDS:-3}; PUT_SECS=3; DEFRAG_MIB=512; OVERWRITE_X=2; OVERWRITE_SECS=30; NET_SECS=5s
else
    RECORDS=2000000; SECS=10; R=${ROUNDS:-5}; PUT_SECS=8; DEFRAG_MIB=2048; OVERWRITE_X=3; OVERWRITE_SECS=120; NET_SECS=20s
fi
case "$R" in ''|*[!0-9]*) echo "bench-compare: --rounds must be a number from 1 to 20" >&2; exit 2 ;; esac
if [ "$R" -lt 1 ] || [ "$R" -gt 20 ]; then echo "bench-compare: --rounds $R is outside 1 to 20" >&2; exit 2; fi
RESULTS=${RESULTS:-/var/tmp/quiver-bench-results/$(date +%Y%m%d-%H%M%S)}
mkdir -p "$RESULTS" "$DIR"
skip() { case ",$SKIP," in *",$1,"*) return 0 ;; *) return 1 ;; esac; }
log() { echo "== $*" >&2; }

# ---------------------------------------------------------------- prerequisites and builds
need_pkg() { # command package
    command -v "$1" >/dev/null 2>&1 && return 0
    log "installing $2"
    if [ "$(id -u)" = 0 ]; then
        (apt-get install -y -qq "$2" >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y -qq "$2" >/dev/null; })
    else
        echo "bench-compare: $1 is missing; install the Debian package $2" >&2; return 1
    fi
}
skip fio || need_pkg fio fio
skip redis || need_pkg redis-server redis-server

TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
PEERS_TARGET=${PEERS_TARGET_DIR:-$ROOT/target/peers}
log "building quiver-perf, quiver, quiverd (release)"
(cd "$ROOT" && cargo build --release -q -p quiver-benches --bin quiver-perf)
HAVE_NET=1
(cd "$ROOT" && cargo build --release -q -p quiver-tools --bin quiver && cargo build --release -q -p quiver-server --bin quiverd) || HAVE_NET=0
PERF=$TARGET/release/quiver-perf
QUIVER=$TARGET/release/quiver
QUIVERD=$TARGET/release/quiverd
ROCKS=$PEERS_TARGET/release/rocksdb-perf
if ! skip rocksdb; then
    log "building rocksdb-perf (benches/peers, own workspace; the first build takes 10-15 minutes)"
    need_pkg clang libclang-dev || true
    (cd "$ROOT/benches/peers" && CARGO_TARGET_DIR=$PEERS_TARGET cargo build --release -q)
fi

# ---------------------------------------------------------------- the machine
{
    echo "date: $(date -Is)"
    echo "mode: $MODE rounds: $R records: $RECORDS phase_s: $SECS"
    echo "nproc: $(nproc)"
    echo "cpu: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //')"
    echo "ram: $(free -g | awk '/Mem:/{print $2" GiB"}')"
    echo "kernel: $(uname -r)"
    echo "dir: $DIR on $(df -P "$DIR" | awk 'NR==2{print $1" ("$2" KiB blocks)"}')"
    lsblk -d -o NAME,SIZE,ROTA,MODEL 2>/dev/null | sed 's/^/disk: /'
    echo "load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"
    echo "commit: $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)"
} > "$RESULTS/machine.txt"
cat "$RESULTS/machine.txt" >&2

# fio's random reads cover only the written part of quiver.db (688-byte frames): the rest of
# the preallocated file is unwritten extents, which ext4 answers with zeros and no device I/O.
WRITTEN_MIB=$((RECORDS * 688 / 1048576 * 95 / 100))
COMMON=(--dir "$DIR" --out "$RESULTS" --records "$RECORDS" --value-bytes 600)

# fio NAME FILE ARGS...: one fio job, JSON into results/fio-NAME-<n>.json
fio_n=$(find "$RESULTS" -maxdepth 1 -name "fio-*.json" | wc -l) # a resumed run keeps numbering
fio_job() {
    local name=$1 file=$2; shift 2
    fio_n=$((fio_n + 1))
    fio --name="$name" --filename="$file" --output-format=json --output="$RESULTS/fio-$name-$fio_n.json" \
        --direct=1 --time_based --group_reporting "$@" >/dev/null
}

# ---------------------------------------------------------------- point reads, alternating
if ! skip get; then
log "point reads: quiver-perf get | fio randread qd1, qd32 | rocksdb-perf get (x$R)"
"$PERF" get --dir "$DIR" --records "$RECORDS" --value-bytes 600 --rounds 1 --secs 0.2 >/dev/null # create + load the store once (not reported)
for i in $(seq "$R"); do
    "$PERF" get "${COMMON[@]}" --secs "$SECS" --rounds 1 --seed "$i" >/dev/null
    if ! skip fio; then
        fio_job randread-qd1 "$DIR/quiver.db" --rw=randread --bs=4k --size="${WRITTEN_MIB}m" --ioengine=io_uring --iodepth=1 --runtime="$SECS"
        fio_job randread-qd32 "$DIR/quiver.db" --rw=randread --bs=4k --size="${WRITTEN_MIB}m" --ioengine=io_uring --iodepth=32 --runtime="$SECS"
    fi
    skip rocksdb || "$ROCKS" get "${COMMON[@]}" --secs "$SECS" --rounds 1 --seed "$i" >/dev/null
done

fi

if ! skip batch; then
log "batch get of 100 against a single get"
"$PERF" batch "${COMMON[@]}" --secs "$SECS" --rounds "$R" >/dev/null

fi

# ---------------------------------------------------------------- puts, alternating
if ! skip put; then
log "puts: quiver-perf put | rocksdb-perf put | fio fsync (x$R)"
for i in $(seq "$R"); do
    "$PERF" put "${COMMON[@]}" --rounds 1 --secs "$PUT_SECS" --fsync-secs 2 >/dev/null
    skip rocksdb || "$ROCKS" put "${COMMON[@]}" --rounds 1 --secs "$PUT_SECS" >/dev/null
    skip fio || fio_job fsync "$DIR/fio-fsync.dat" --rw=write --bs=4k --size=64m --ioengine=sync --fdatasync=1 --direct=0 --overwrite=1 --runtime=2
done
fi

# ---------------------------------------------------------------- sequential device speed
if ! skip fio; then
    log "fio sequential write and read, 1 MiB"
    for i in $(seq "$R"); do
        fio_job seqwrite "$DIR/fio-seq.dat" --rw=write --bs=1m --size=2g --ioengine=io_uring --iodepth=8 --runtime="$SECS"
        fio_job seqread "$DIR/fio-seq.dat" --rw=read --bs=1m --size=2g --ioengine=io_uring --iodepth=8 --runtime="$SECS"
    done
    rm -f "$DIR/fio-seq.dat" "$DIR/fio-fsync.dat"
fi

# ---------------------------------------------------------------- restart and index RAM
restart_at() { # records
    local n=$1
    # The scan is measured on feature-vector records (600-byte values, like the reference's
    # 8 doubles and a 512-byte vector); fio reads the same file with as many bytes in flight
    # as the scan keeps (two readers of 8 MiB: 16 x 1 MiB).
    log "restart at $n records of 600 B; index RAM at $n records of 32 B"
    "$PERF" restart --dir "$DIR" --out "$RESULTS" --records "$n" --value-bytes 600 --rounds 1 --secs 1 >/dev/null
    for i in $(seq "$R"); do
        "$PERF" restart --dir "$DIR" --out "$RESULTS" --records "$n" --value-bytes 600 --rounds 1 --secs 1 >/dev/null
        skip fio || fio_job "scanread-$n" "$DIR/small.db" --rw=read --bs=1m --ioengine=io_uring --iodepth=16 --runtime=30 --time_based=0
    done
    rm -f "$DIR/small.db" "$DIR/small.db.ckpt"
    "$PERF" index-ram --dir "$DIR" --out "$RESULTS" --records "$n" --value-bytes 32 >/dev/null
    rm -f "$DIR/small.db" "$DIR/small.db.ckpt"
}
if ! skip restart; then
    restart_at "$RECORDS"
    [ "$WITH_10M" = 1 ] && restart_at 10000000
fi

# ---------------------------------------------------------------- defragmentation
if ! skip defrag; then
    log "defragmentation: write amplification at 50% and 80% fill, get p99 during defrag"
    "$PERF" defrag --dir "$DIR" --out "$RESULTS" --value-bytes 600 --device-mib "$DEFRAG_MIB" \
        --overwrite-x "$OVERWRITE_X" --max-overwrite-secs "$OVERWRITE_SECS" --secs "$SECS" --rounds "$R" >/dev/null
fi
rm -f "$DIR/quiver.db" "$DIR/quiver.db.ckpt"

# ---------------------------------------------------------------- network: quiverd vs Redis
NET_STATUS=pending
if ! skip redis && [ "$HAVE_NET" = 1 ]; then
    log "network: quiver bench against redis-server and quiverd, same generator (x$R)"
    REDIS_PID=""; QUIVERD_PID=""
    cleanup() {
        [ -n "$REDIS_PID" ] && kill "$REDIS_PID" 2>/dev/null || true
        [ -n "$QUIVERD_PID" ] && kill "$QUIVERD_PID" 2>/dev/null || true
    }
    trap cleanup EXIT
    redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save "" --appendonly no --daemonize no \
        --protected-mode yes >"$RESULTS/redis.log" 2>&1 &
    REDIS_PID=$!
    rm -f "$DIR/quiverd.db" "$DIR/quiverd.db.ckpt"
    "$QUIVERD" --data "$DIR/quiverd.db" --size 4GiB --listen "127.0.0.1:$QUIVERD_PORT" --trusted-network \
        >"$RESULTS/quiverd.out" 2>"$RESULTS/quiverd.log" &
    QUIVERD_PID=$!
    # quiverd prints its address once the store is open (a new data file is zeroed first).
    for _ in $(seq 120); do
        grep -q "listening on" "$RESULTS/quiverd.out" 2>/dev/null && break
        kill -0 "$QUIVERD_PID" 2>/dev/null || break
        sleep 0.5
    done
    sleep 1 # and Redis, started at the same time
    NET=(--workload read-only --records 100000 --scalars 10 --vector-dim 0 --connections 50 --pipeline 16
         --closed --warmup 2s --duration "$NET_SECS" --quiet)
    NET_STATUS=measured
    for i in $(seq "$R"); do
        load=(); [ "$i" -gt 1 ] && load=(--no-load)
        "$QUIVER" bench --target "redis:127.0.0.1:$REDIS_PORT" "${NET[@]}" "${load[@]}" \
            --json "$RESULTS/net-redis-$i.json" >/dev/null 2>"$RESULTS/net-redis-$i.err" || NET_STATUS="redis failed (see net-redis-$i.err)"
        "$QUIVER" bench --target "quiverd:127.0.0.1:$QUIVERD_PORT" "${NET[@]}" "${load[@]}" \
            --json "$RESULTS/net-quiverd-$i.json" >/dev/null 2>"$RESULTS/net-quiverd-$i.err" || NET_STATUS="quiverd target failed or pending (see net-quiverd-$i.err)"
    done
    cleanup
    trap - EXIT
    rm -f "$DIR/quiverd.db" "$DIR/quiverd.db.ckpt"
fi
echo "$NET_STATUS" > "$RESULTS/net-status.txt"

# ---------------------------------------------------------------- microbenchmarks
if [ "$MICRO" = 1 ]; then
    log "criterion microbenchmarks"
    (cd "$ROOT" && cargo bench -q -p quiver-benches --bench micro) > "$RESULTS/micro.txt" 2>&1 || true
fi

# ---------------------------------------------------------------- the table
python3 - "$RESULTS" <<'PY'
import csv, glob, json, os, re, statistics, sys
res = sys.argv[1]
rows = {}
with open(os.path.join(res, "results.csv")) as f:
    for r in csv.DictReader(f):
        rows.setdefault((r["system"], r["bench"], r["metric"]), []).append(float(r["value"]))
def q(system, bench, metric):
    v = rows.get((system, bench, metric))
    return statistics.median(v) if v else None
def fio(name, field):
    vals = []
    for p in sorted(glob.glob(os.path.join(res, f"fio-{name}-*.json"))):
        try:
            j = json.load(open(p))["jobs"][0]
        except Exception:
            continue
        vals.append(field(j))
    return statistics.median(vals) if vals else None
def net(system, field):
    vals = []
    for p in sorted(glob.glob(os.path.join(res, f"net-{system}-*.json"))):
        try:
            vals.append(field(json.load(open(p))))
        except Exception:
            pass
    return statistics.median(vals) if vals else None
rd_iops = lambda j: j["read"]["iops"]
table = []
def row(what, quiver, ref, ref_name, target, kind):
    """kind: ratio or value, then >=, <= or <, then the bound, e.g. 'ratio>=0.9'."""
    m = re.match(r"(ratio|value)(>=|<=|<)([0-9.]+)$", kind)
    base, op, bound = m.group(1), m.group(2), float(m.group(3))
    ref_text = (fmt(ref) + " " + ref_name) if ref is not None else ref_name
    if quiver is None or (base == "ratio" and not ref):
        table.append((what, fmt(quiver), ref_text, "-", target, "NOT MEASURED"))
        return
    val = quiver / ref if base == "ratio" else quiver
    ok = {">=": val >= bound, "<=": val <= bound, "<": val < bound}[op]
    table.append((what, fmt(quiver), ref_text, f"{val:.2f}", target, "met" if ok else "MISSED"))
def fmt(v):
    if v is None: return "-"
    return f"{v:,.0f}" if abs(v) >= 100 else f"{v:.2f}"
def at_most_records(metric):
    """The index-ram figure of the run with the most records (10M when --with-10m ran)."""
    recs = rows.get(("quiver", "index-ram", "records"), [])
    vals = rows.get(("quiver", "index-ram", metric), [])
    return max(zip(recs, vals))[1] if recs and vals else None
row(f"index bytes/record at {fmt(max(rows.get(('quiver','index-ram','records'), [0])))} records", at_most_records("index_bytes_per_record"),
    None, "(Aerospike 64)", "<= 40 B", "value<=40")
row("get QD1 ops/s vs fio 4K randread QD1", q("quiver","get","get_qd1_ops_s"), fio("randread-qd1", rd_iops), "fio IOPS", ">= 0.9 x", "ratio>=0.9")
row("get 32 threads ops/s vs fio QD32", q("quiver","get","get_t32_ops_s"), fio("randread-qd32", rd_iops), "fio IOPS", ">= 0.9 x", "ratio>=0.9")
row("get_many(32) keys/s vs fio QD32", q("quiver","get","get_many32_keys_ops_s"), fio("randread-qd32", rd_iops), "fio IOPS", ">= 0.9 x", "ratio>=0.9")
row("get_many(100) p50 vs single get p50", q("quiver","batch","get_many100_p50_us"), q("quiver","batch","single_get_p50_us"), "us single", "<= 3 x", "ratio<=3")
row("get_many(100) p99 vs single get p99", q("quiver","batch","get_many100_p99_us"), q("quiver","batch","single_get_p99_us"), "us single", "<= 3 x", "ratio<=3")
row("buffered puts/s vs RocksDB (WAL, no sync)", q("quiver","put","put_buffered_ops_s"), q("rocksdb","put","put_buffered_ops_s"), "RocksDB", ">= 3 x", "ratio>=3")
row("sync puts/s (64 thr) vs fsync/s (same run)", q("quiver","put","put_sync_ops_s"), q("quiver","put","fsync_ops_s"), "fsync/s", ">= 20 x", "ratio>=20")
row("sync puts/s (64 thr) vs fio fdatasync/s", q("quiver","put","put_sync_ops_s"), fio("fsync", lambda j: j["write"]["iops"]), "fio", ">= 20 x", "ratio>=20")
def restart_rows(n):
    """Restart figures of the runs at n records (restart reports carry a records metric)."""
    recs = rows.get(("quiver", "restart", "records"), [])
    def pick(metric):
        v = [x for r, x in zip(recs, rows.get(("quiver", "restart", metric), [])) if int(r) == n]
        return statistics.median(v) if v else None
    seq = fio(f"scanread-{n}", lambda j: j["read"]["bw_bytes"] / 1e6)
    row(f"restart from checkpoint at {n:,} records, s", pick("restart_checkpoint_s"), None, "", "< 5 s", "value<5")
    row(f"cold scan MB/s at {n:,} vs fio seq read of same file", pick("scan_mb_s"), seq, "MB/s", ">= 0.8 x", "ratio>=0.8")
    info.append((f"cold scan s at {n:,} records", pick("restart_scan_s")))
info = []
for n in sorted({int(r) for r in rows.get(("quiver", "restart", "records"), [])}):
    restart_rows(n)
row("write amplification, 50% fill", q("quiver","defrag","fill50_write_amp"), None, "", "<= 2.5", "value<=2.5")
row("write amplification, 80% fill", q("quiver","defrag","fill80_write_amp"), None, "", "(<= 2.5)", "value<=2.5")
if q("quiver", "defrag", "fill80_defrag_blocks_freed") == 0:
    table[-1] = table[-1][:5] + ("MISSED: no block reached the threshold; writers stalled on a full device",)
row("get p99 during defrag vs without", q("quiver","defrag","get_during_defrag_p99_us"), q("quiver","defrag","get_no_defrag_p99_us"), "us", "<= 1.5 x", "ratio<=1.5")
row("quiverd ops/s vs Redis HMGET (50 conn, depth 16)", net("quiverd", lambda j: j["ops_per_s"]), net("redis", lambda j: j["ops_per_s"]), "Redis", ">= 1.5 x", "ratio>=1.5")
row("quiverd p99 vs Redis p99", net("quiverd", lambda j: j["latency_us"]["p99"]), net("redis", lambda j: j["latency_us"]["p99"]), "us Redis", "<= 1 x", "ratio<=1")
info += [
    ("RocksDB get 32 threads ops/s", q("rocksdb","get","get_t32_ops_s")),
    ("RocksDB multi_get(32) keys/s", q("rocksdb","get","get_many32_keys_ops_s")),
    ("RocksDB get QD1 ops/s", q("rocksdb","get","get_qd1_ops_s")),
    ("quiver get 32 threads p99 us", q("quiver","get","get_t32_p99_us")),
    ("RocksDB sync puts/s (64 thr)", q("rocksdb","put","put_sync_ops_s")),
    ("RocksDB RSS/record (after reads), B", q("rocksdb","get","rss_delta_per_record")),
    ("quiver RSS/record (index-ram), B", q("quiver","index-ram","rss_delta_per_record")),
    ("fio seq write MB/s", fio("seqwrite", lambda j: j["write"]["bw_bytes"]/1e6)),
    ("fio seq read MB/s", fio("seqread", lambda j: j["read"]["bw_bytes"]/1e6)),
    ("fio randread QD1 p50 us", fio("randread-qd1", lambda j: j["read"]["clat_ns"]["percentile"]["50.000000"]/1e3)),
    ("fio randread QD32 p50 us", fio("randread-qd32", lambda j: j["read"]["clat_ns"]["percentile"]["50.000000"]/1e3)),
]
lines = ["| what | quiver | reference | ratio/value | target | verdict |", "| --- | ---: | ---: | ---: | --- | --- |"]
lines += ["| " + " | ".join(str(c) for c in r) + " |" for r in table]
lines += ["", "| other figures (medians) | value |", "| --- | ---: |"]
lines += [f"| {k} | {fmt(v)} |" for k, v in info]
status = open(os.path.join(res, "net-status.txt")).read().strip() if os.path.exists(os.path.join(res, "net-status.txt")) else "pending"
lines += ["", f"network comparison: {status}"]
missed = [r[0] for r in table if r[5] == "MISSED"]
unmeasured = [r[0] for r in table if r[5] == "NOT MEASURED"]
lines += ["", "MISSED targets: " + ("; ".join(missed) if missed else "none")]
if unmeasured:
    lines += ["not measured in this run: " + "; ".join(unmeasured)]
text = "\n".join(lines)
print(text)
open(os.path.join(res, "summary.md"), "w").write(text + "\n")
PY
echo "raw reports: $RESULTS" >&2
