#!/usr/bin/env python3
"""Write amplification of a log-structured store under uniform random overwrites.

A model, not a benchmark: it shows what any greedy cleaner (the emptiest block first, the one
Quiver's low-space defragmentation uses) must copy at a given fill, so that the measured
figure in docs/BENCHMARKS.md can be read against it.

The device has BLOCKS blocks of PER records. A fill of F puts F * BLOCKS * PER records on it;
each step overwrites one record chosen uniformly at random (the old copy becomes dead, the new
one is appended to the open block). Whenever fewer than RESERVE free blocks remain, the
cleaner takes the sealed block with the fewest live records, copies them to its own open
block and frees it. Write amplification = (user writes + copies) / user writes, measured after
a warm-up of WARM overwrites per record.

    python3 scripts/wa-model.py                     # the table in docs/BENCHMARKS.md
    python3 scripts/wa-model.py --fill 0.8 --reserve 0.07
"""

import argparse
import random


def write_amp(blocks, per, fill, reserve_frac, warm, measure, seed):
    rng = random.Random(seed)
    records = int(blocks * per * fill)
    reserve = max(2, int(blocks * reserve_frac))
    where = [0] * records
    live = [0] * blocks
    members = [set() for _ in range(blocks)]
    free = list(range(blocks))
    is_free = [True] * blocks
    open_block = {"user": None, "copy": None}
    used = {"user": per, "copy": per}

    def take():
        b = free.pop()
        is_free[b] = False
        return b

    def append(r, stream):
        if used[stream] == per:
            open_block[stream] = take()
            used[stream] = 0
        b = open_block[stream]
        members[b].add(r)
        live[b] += 1
        where[r] = b
        used[stream] += 1

    for r in range(records):
        append(r, "user")

    user = copies = 0
    for step in range(records * (warm + measure)):
        if step == records * warm:
            user = copies = 0
        r = rng.randrange(records)
        old = where[r]
        members[old].discard(r)
        live[old] -= 1
        append(r, "user")
        user += 1
        while len(free) < reserve:
            sealed = (
                b
                for b in range(blocks)
                if not is_free[b] and b != open_block["user"] and b != open_block["copy"]
            )
            victim = min(sealed, key=lambda b: live[b])
            for rr in list(members[victim]):
                members[victim].discard(rr)
                live[victim] -= 1
                append(rr, "copy")
                copies += 1
            free.append(victim)
            is_free[victim] = True
    return (user + copies) / user


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--blocks", type=int, default=400)
    p.add_argument("--per", type=int, default=64, help="records per block")
    p.add_argument("--fill", type=float, action="append", help="fraction of the device live")
    p.add_argument("--reserve", type=float, action="append", help="free fraction kept by the cleaner")
    p.add_argument("--warm", type=int, default=3, help="overwrites per record before measuring")
    p.add_argument("--measure", type=int, default=3, help="overwrites per record measured")
    p.add_argument("--seed", type=int, default=1)
    a = p.parse_args()
    fills = a.fill or [0.5, 0.8]
    reserves = a.reserve or [0.05, 0.07, 0.10]
    print(f"{'fill':>6} {'reserve':>8} {'write amp':>10}")
    for f in fills:
        for res in reserves:
            wa = write_amp(a.blocks, a.per, f, res, a.warm, a.measure, a.seed)
            print(f"{f:>6.2f} {res:>8.2f} {wa:>10.2f}")


if __name__ == "__main__":
    main()
