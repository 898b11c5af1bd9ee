"""Study designs and attribution, on plugin tables made up for the purpose (a third-party
plugin is just another entry) and on made-up figures whose answer is known."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from worldswitch.attribution import attribute, core
from worldswitch.cli import DESIGN_NAMES
from worldswitch.designs import DESIGNS, FACTORIAL_MAX, build, closure
from worldswitch.errors import UsageError


def plugin(patch: int | None, *requires: str, builtin: bool = True) -> SimpleNamespace:
    return SimpleNamespace(meta=SimpleNamespace(patch=patch, requires=requires), builtin=builtin)


# 7 <- 8 <- 9, 6 alone, and a third-party plugin that needs 7
FOUND = {"six": plugin(6), "seven": plugin(7), "eight": plugin(8, "seven"), "nine": plugin(9, "eight"),
         "mine": plugin(None, "seven", builtin=False)}
ALL = ["six", "seven", "eight", "nine", "mine"]


def sets(d) -> dict[str, tuple[str, ...]]:  # noqa: ANN001
    return {s.label: s.plugins for s in d.subsets}


def test_the_cli_knows_every_design() -> None:
    assert DESIGN_NAMES == DESIGNS


def test_closure_is_transitive() -> None:
    assert closure("nine", FOUND) == {"seven", "eight", "nine"}
    assert closure("mine", FOUND) == {"mine", "seven"}


def test_one_at_a_time_adds_requirements_and_the_whole_set() -> None:
    d = build("one-at-a-time", ALL, FOUND)
    assert sets(d) == {"vanilla": (), "all": tuple(ALL), "+6": ("six",), "+7": ("seven",),
                       "+8 (with 7)": ("seven", "eight"), "+9 (with 7,8)": ("seven", "eight", "nine"),
                       "+mine (with 7)": ("seven", "mine")}
    assert d.skipped == []


def test_a_requirement_outside_the_study_is_skipped_with_the_reason() -> None:
    d = build("one-at-a-time", ["six", "eight"], FOUND)
    assert ("+8", "eight requires seven, which is not in the study") in d.skipped
    assert "+8" not in sets(d) and "+6" in sets(d)


def test_leave_one_out_drops_what_depends_on_the_plugin() -> None:
    d = build("leave-one-out", ALL, FOUND)
    s = sets(d)
    assert s["all-7"] == ("six",)  # 8, 9 and mine need 7
    assert s["all-8"] == ("six", "seven", "mine")
    assert s["all-mine"] == ("six", "seven", "eight", "nine")


def test_cumulative_follows_the_given_order_and_skips_broken_prefixes() -> None:
    d = build("cumulative", ["six", "seven", "eight", "nine"], FOUND)
    assert list(sets(d)) == ["vanilla", "+6", "+6,7", "+6,7,8", "+6,7,8,9"]
    d = build("cumulative", ["eight", "seven"], FOUND)
    assert d.skipped == [("+8", "eight requires seven")] and list(sets(d)) == ["vanilla", "+8,7"]


def test_factorial_runs_every_valid_subset_and_says_why_not_the_others() -> None:
    d = build("factorial", ["six", "seven", "eight"], FOUND)
    assert len(d.subsets) == 1 + 5  # 7 subsets minus {8} and {6,8}, plus vanilla
    assert sorted(label for label, _ in d.skipped) == ["+6,8", "+8"]
    assert all(why == "eight requires seven" for _, why in d.skipped)


def test_factorial_over_too_many_plugins_is_refused() -> None:
    many = {f"p{i}": plugin(None) for i in range(FACTORIAL_MAX + 1)}
    with pytest.raises(UsageError, match=f"factorial over {FACTORIAL_MAX + 1} plugins is 2\\^"):
        build("factorial", list(many), many)


def test_random_is_seeded_distinct_and_valid() -> None:
    a, b = build("random", ALL, FOUND, n=8, seed=5), build("random", ALL, FOUND, n=8, seed=5)
    assert sets(a) == sets(b) and len(a.subsets) == 9
    assert sets(build("random", ALL, FOUND, n=8, seed=6)) != sets(a)
    plugins = [s.plugins for s in a.subsets]
    assert len(set(plugins)) == len(plugins)
    for s in a.subsets:
        assert all(r in s.plugins for p in s.plugins for r in FOUND[p].meta.requires)


@pytest.mark.parametrize(("name", "kwargs", "message"), [
    ("nope", {}, "unknown design 'nope'"), ("random", {}, "random needs N"), ("one-at-a-time", {"plugins": []},
                                                                              "at least one plugin"),
])
def test_bad_designs(name: str, kwargs: dict, message: str) -> None:
    with pytest.raises(UsageError, match=message):
        build(name, kwargs.get("plugins", ALL), FOUND)


# --- attribution on known figures ------------------------------------------------------

SAVES = {"six": 700.0, "seven": 2000.0, "eight": 300.0}  # additive, except 8 only saves on top of 7


def cycles_of(chosen: frozenset[str], interaction: float = 0.0) -> float:
    c = 10_000.0 - sum(SAVES[p] for p in chosen)
    if {"six", "seven"} <= chosen:
        c -= interaction
    return c


def factorial_cycles(interaction: float = 0.0) -> dict[frozenset[str], float]:
    d = build("factorial", ["six", "seven", "eight"], FOUND)
    return {frozenset(s.plugins): cycles_of(frozenset(s.plugins), interaction) for s in d.subsets}


def test_core_drops_plugins_without_their_requirements() -> None:
    assert core(frozenset({"eight", "nine", "six"}), FOUND) == {"six"}
    assert core(frozenset({"seven", "nine"}), FOUND) == {"seven"}


def test_additive_savings_attribute_exactly() -> None:
    a = attribute(["six", "seven", "eight"], factorial_cycles(), FOUND)
    rows = {r["plugin"]: r for r in a["plugins"]}
    assert a["saved"] == 3000.0 and a["shapley_exact"]
    assert rows["six"]["alone"] == rows["six"]["marginal"] == rows["six"]["shapley"] == 700.0
    assert rows["eight"]["alone"] == 2300.0  # with 7, which it requires
    assert rows["eight"]["marginal"] == 300.0
    assert sum(r["shapley"] for r in rows.values()) == pytest.approx(3000.0)
    inter = {(x["a"], x["b"]): x["value"] for x in a["interactions"]}
    # 8 does nothing without 7: all it saves is an interaction with 7; the rest add up
    assert inter == {("six", "seven"): 0.0, ("six", "eight"): 0.0, ("seven", "eight"): 300.0}


def test_an_interaction_is_found_and_shared() -> None:
    a = attribute(["six", "seven", "eight"], factorial_cycles(interaction=400.0), FOUND)
    inter = {(x["a"], x["b"]): x["value"] for x in a["interactions"]}
    assert inter[("six", "seven")] == pytest.approx(400.0)
    rows = {r["plugin"]: r for r in a["plugins"]}
    assert rows["six"]["shapley"] - 700 == pytest.approx(200.0)  # the pair's extra, split evenly
    assert sum(r["shapley"] for r in rows.values()) == pytest.approx(a["saved"])


def test_unmeasured_figures_are_none_not_zero() -> None:
    c = {frozenset(): 10_000.0, frozenset({"six"}): 9_300.0}
    a = attribute(["six", "seven"], c, FOUND)
    rows = {r["plugin"]: r for r in a["plugins"]}
    assert rows["six"]["alone"] == 700.0 and rows["seven"]["alone"] is None
    assert rows["six"]["marginal"] is None and rows["six"]["shapley"] is None and a["saved"] is None


def test_shapley_design_samples_orders_and_runs_their_prefixes() -> None:
    d = build("shapley", ["six", "seven", "eight"], FOUND, n=30, seed=2)
    assert len(d.orders) == 30 and d.orders == build("shapley", ["six", "seven", "eight"], FOUND, n=30, seed=2).orders
    # a prefix with 8 before 7 amounts to its part without 8: never a broken set
    assert all(not ("eight" in s.plugins and "seven" not in s.plugins) for s in d.subsets)


def test_sampled_shapley_estimates_the_exact_split_with_its_error() -> None:
    plugins = ["six", "seven", "eight"]
    cycles = factorial_cycles(interaction=400.0)
    exact = {r["plugin"]: r["shapley"] for r in attribute(plugins, cycles, FOUND)["plugins"]}
    d = build("shapley", plugins, FOUND, n=200, seed=4)
    from worldswitch import attribution

    sampled = attribution._sampled_shapley(d.orders, lambda s: 10_000.0 - cycles[s], FOUND)
    for p, (mean, se) in sampled.items():
        assert abs(mean - exact[p]) <= 4 * se + 1e-9, (p, mean, se, exact[p])
    assert sum(m for m, _ in sampled.values()) == pytest.approx(3400.0)  # every order adds up to the whole
    additive = attribution._sampled_shapley(d.orders, lambda s: 10_000.0 - cycles_of(s), FOUND)
    assert additive["six"] == (pytest.approx(700.0), pytest.approx(0.0))
