"""Data quality through the Python SDK: validation rules and violation modes in the schema
(create, describe, alter), puts and bulk writes that break them, the freshness and drift
settings, and live feature statistics; against quiverd and against an embedded store."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

import quiver
from quiver import Feature, GroupSpec, errors


def rules_spec(name: str, **kw) -> GroupSpec:
    return GroupSpec(
        name=name,
        key_type="string",
        features=[
            Feature("age", quiver.I64, rules=("range=[0,150]",)),
            Feature("city", quiver.STRING, rules=("not-null", "in=paris,rome")),
            Feature("score", quiver.F64),
        ],
        **kw,
    )


def test_rules_are_set_on_create_and_shown_by_describe(store, group_name):
    created = store.create_group(rules_spec(group_name, max_staleness=900, drift_psi=0.2))
    assert created.feature("age").rules == ("range=[0,150]",)
    assert created.feature("city").rules == ("not-null", "in=paris,rome")
    assert created.feature("score").rules == ()
    assert created.on_violation == "reject"
    assert (created.max_staleness_s, created.drift_psi, created.drift_distance) == (900, 0.2, None)
    described = store.describe_group(group_name)
    assert described.feature("city").rules == ("not-null", "in=paris,rome")
    assert described.max_staleness_s == 900


def test_bad_rules_and_modes_are_refused_with_clear_errors(store, group_name):
    bad_rule = GroupSpec(group_name, "string", [Feature("age", quiver.I64, rules=("range=[5,1]",))])
    with pytest.raises(errors.InvalidArgumentError, match="age"):
        store.create_group(bad_rule)
    unknown = GroupSpec(group_name, "string", [Feature("age", quiver.I64, rules=("between=1,2",))])
    with pytest.raises(errors.InvalidArgumentError, match="age"):
        store.create_group(unknown)
    # A rule that does not fit the type is refused by the store.
    misfit = GroupSpec(group_name, "string", [Feature("age", quiver.I64, rules=("regex=[a-z]+",))])
    with pytest.raises(errors.InvalidArgumentError):
        store.create_group(misfit)
    with pytest.raises(errors.InvalidArgumentError, match="reject or drop"):
        store.create_group(rules_spec(group_name, on_violation="ignore"))
    with pytest.raises(errors.UnknownGroupError):
        store.describe_group(group_name)


def test_reject_mode_refuses_the_whole_put_naming_feature_rule_and_value(store, group_name):
    store.create_group(rules_spec(group_name))
    with pytest.raises(errors.InvalidArgumentError, match=r"'age'.*range=\[0,150\]: got 200"):
        store.put(group_name, "u1", {"age": 200, "city": "paris", "score": 1.0})
    ref = f"{group_name}:score"
    # Nothing of the refused put was written.
    assert store.get_online_features([ref], ["u1"]).statuses(ref)[0] == quiver.Status.NOT_FOUND
    ok = store.put(group_name, "u1", {"age": 30, "city": "paris", "score": 1.0})
    assert (ok.written, ok.dropped) == (3, 0)
    frame = pd.DataFrame({"user": ["a", "b", "c"], "age": [1, 2, 3], "city": ["rome", "oslo", "paris"]})
    with pytest.raises(errors.InvalidArgumentError, match="row 1.*in=paris,rome: got 'oslo'"):
        store.put_many(group_name, frame, key="user")


def test_drop_mode_leaves_out_the_offending_values_and_counts_them(store, group_name):
    store.create_group(rules_spec(group_name, on_violation="drop"))
    r = store.put(group_name, "u1", {"age": -5, "city": "rome", "score": 2.0})
    assert (r.written, r.dropped) == (2, 1)
    refs = [f"{group_name}:age", f"{group_name}:city"]
    got = store.get_online_features(refs, ["u1"])
    assert got.statuses(refs[0])[0] == quiver.Status.NOT_FOUND
    assert got.values(refs[1])[0] == "rome"
    frame = pd.DataFrame(
        {
            "user": [f"e{i}" for i in range(10)],
            "age": [200 if i % 3 == 0 else i for i in range(10)],
            "city": ["paris" if i % 2 else "lima" for i in range(10)],
        }
    )
    summary = store.put_many(group_name, frame, key="user")
    expected_drops = sum(1 for i in range(10) if i % 3 == 0) + sum(1 for i in range(10) if i % 2 == 0)
    assert summary.rows == 10
    assert summary.dropped == expected_drops
    assert summary.written == 20 - expected_drops


def test_alter_sets_and_clears_rules_mode_and_thresholds(store, group_name):
    store.create_group(rules_spec(group_name))
    s = store.alter_group(
        group_name,
        rules={"age": [], "score": ["finite", "range=(0,1]"]},
        on_violation="drop",
        max_staleness=60,
        drift_distance=0.5,
    )
    assert s.feature("age").rules == ()
    assert s.feature("score").rules == ("finite", "range=(0,1]")
    assert (s.on_violation, s.max_staleness_s, s.drift_distance) == ("drop", 60, 0.5)
    assert store.put(group_name, "u1", {"age": 500, "score": 0.0}).dropped == 1
    s = store.alter_group(group_name, max_staleness=None, drift_distance=None, on_violation="reject")
    assert (s.on_violation, s.max_staleness_s, s.drift_distance) == ("reject", None, None)
    with pytest.raises(errors.UnknownFeatureError):
        store.alter_group(group_name, rules={"nope": ["not-null"]})


def test_feature_statistics_match_the_values_written(store, group_name):
    store.create_group(rules_spec(group_name))
    rng = np.random.default_rng(7)
    scores = rng.normal(10.0, 2.0, size=2000)
    cities = rng.choice(["paris", "rome"], size=2000, p=[0.7, 0.3])
    frame = pd.DataFrame(
        {"user": [f"u{i}" for i in range(2000)], "score": scores, "city": cities, "age": np.arange(2000) % 100}
    )
    store.put_many(group_name, frame, key="user")
    store.put(group_name, "nul", {"score": None, "city": "rome"})
    report = store.feature_stats(group_name)
    assert report["group"] == group_name
    assert report["puts"] == 2001
    by_name = {f["name"]: f for f in report["features"]}
    score = by_name["score"]
    assert (score["count"], score["nulls"]) == (2001, 1)
    hour = next(w for w in score["windows"] if w["window"] == "1h")
    numbers = hour["numbers"]
    assert numbers["min"] == pytest.approx(scores.min())
    assert numbers["max"] == pytest.approx(scores.max())
    assert numbers["mean"] == pytest.approx(scores.mean(), rel=1e-9)
    assert numbers["stddev"] == pytest.approx(scores.std(), rel=1e-6)
    median = next(q["value"] for q in numbers["quantiles"] if q["q"] == 0.5)
    # The sketch's documented relative error is 1%.
    assert math.isclose(median, float(np.median(scores)), rel_tol=0.02)
    city = {t["value"]: t["count"] for t in next(w for w in by_name["city"]["windows"] if w["window"] == "1h")["top"]}
    assert city == {"paris": int((cities == "paris").sum()), "rome": int((cities == "rome").sum()) + 1}
    one = store.feature_stats(group_name, "age")
    assert [f["name"] for f in one["features"]] == ["age"]
    with pytest.raises(errors.UnknownFeatureError):
        store.feature_stats(group_name, "nope")
    with pytest.raises(errors.UnknownGroupError):
        store.feature_stats("no_such_group")
