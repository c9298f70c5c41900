"""Typed policy options (--policy.<name>) and the deprecated spellings rewritten to them, one stderr line each."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from vla_gen_bench.options import (
    PolicyOptionError,
    PolicyOptions,
    ProfileOptions,
    parse_key_values,
    upgrade_args,
)


def test_values_are_json_when_they_parse():
    assert parse_key_values(["seed=3", "name=x", "t=0.6", "flag=true", "eq=a=b"]) == \
        {"seed": 3, "name": "x", "t": 0.6, "flag": True, "eq": "a=b"}  # fmt: skip


@pytest.mark.parametrize("bad", ["noequals", "=3"])
def test_malformed_items_name_the_flag(bad):
    with pytest.raises(ValueError, match="--set must be key=value"):
        parse_key_values([bad], "--set")


def test_only_the_options_given_reach_the_adapter():
    """run.json's policy_args is what the command gave: {} and {"temperature": 0} stay two different records."""
    assert PolicyOptions().kwargs() == {}
    assert PolicyOptions(temperature=0).kwargs() == {"temperature": 0.0}
    opts = PolicyOptions.from_kwargs({"temperature": 0.6, "execute": 4, "unnorm_key": "k", "speed": 2})
    assert (opts.temperature, opts.execute, opts.unnorm_key, opts.extra) == (0.6, 4, "k", {"speed": 2})
    assert opts.kwargs() == {"temperature": 0.6, "execute": 4, "unnorm_key": "k", "speed": 2}
    # a caller's defaults fill only what was not given (the profile's protocol, the SFT evaluation's device)
    assert opts.with_defaults(temperature=0.0, device="cpu").kwargs() == {**opts.kwargs(), "device": "cpu"}


@pytest.mark.parametrize(
    "kwargs, match",
    [({"temperature": -0.1}, "temperature takes a number >= 0"), ({"temperature": "hot"}, "a number"),
     ({"temperature": True}, "a number"), ({"seed": 1.5}, "seed takes an integer"), ({"execute": -1}, "integer >= 0"),
     ({"decode": "greedy"}, "'actions' or 'unconstrained'"), ({"fingerprint": "no"}, "true or false"),
     ({"device": 0}, "a string")],
)  # fmt: skip
def test_bad_option_values_are_one_line_naming_the_flag(kwargs, match):
    with pytest.raises(PolicyOptionError, match=match) as e:
        PolicyOptions.from_kwargs(kwargs)
    assert "--policy." in str(e.value) and "\n" not in str(e.value)


def test_a_typed_option_cannot_hide_in_extra():
    with pytest.raises(PolicyOptionError, match="pass --policy.temperature instead"):
        PolicyOptions(extra={"temperature": 0.6})


json_values = st.one_of(st.none(), st.booleans(), st.integers(-5, 5), st.text(min_size=0, max_size=5))


@given(
    temperature=st.one_of(st.none(), st.floats(0, 5)),
    seed=st.one_of(st.none(), st.integers(0, 2**31)),
    extra=st.dictionaries(st.from_regex(r"[a-z]\w{0,6}", fullmatch=True), json_values, max_size=3),
)
def test_kwargs_round_trip(temperature, seed, extra):
    extra = {k: v for k, v in extra.items() if k not in PolicyOptions.names()}
    opts = PolicyOptions(temperature=temperature, seed=seed, extra=extra)
    assert PolicyOptions.from_kwargs(opts.kwargs()) == opts


def test_policy_arg_becomes_typed_flags_and_one_extra_flag():
    args, notes = upgrade_args(
        ["--policy", "p:C", "--policy-arg", "temperature=0.6", "--policy-arg=speed=2", "--policy.extra", "a=1",
         "--policy-arg", "execute=4", "--policy-arg", 'name="a b"', "--unnorm-key", "k"],
        renames={"--unnorm-key": "--policy.unnorm-key"}, policy_arg="--policy.",
    )  # fmt: skip
    assert args == ["--policy", "p:C", "--policy.temperature", "0.6", "--policy.execute", "4", "--policy.unnorm-key",
                    "k", "--policy.extra", "a=1", "speed=2", 'name="a b"']  # fmt: skip
    assert notes == ["--policy-arg temperature=0.6 is deprecated; use --policy.temperature 0.6",
                     "--policy-arg speed=2 is deprecated; use --policy.extra speed=2",
                     "--policy-arg execute=4 is deprecated; use --policy.execute 4",
                     '--policy-arg name="a b" is deprecated; use --policy.extra name="a b"',
                     "--unnorm-key is deprecated; use --policy.unnorm-key k"]  # fmt: skip
    args, notes = upgrade_args(["--policy-arg", "fingerprint=false"], policy_arg="--policy.")
    assert args == ["--policy.fingerprint", "False"]
    assert upgrade_args(["--policy", "x", "--policy.temperature", "1"], policy_arg="--policy.") == (
        ["--policy", "x", "--policy.temperature", "1"], [])  # fmt: skip


def test_set_becomes_flags_placed_first_so_flags_win():
    from vla_gen_bench.training.ppo import PPOConfig

    args, notes = upgrade_args(["--lr", "2", "--set", "lr=1e-4", "--set", "eval.seeds=[0,1]"], sets=PPOConfig)
    assert args == ["--lr", "1e-4", "--eval.seeds", "0", "1", "--lr", "2"]
    assert notes == ["--set lr=1e-4 is deprecated; use --lr 1e-4", "--set eval.seeds=[0,1] is deprecated; use "
                     "--eval.seeds 0 1"]  # fmt: skip
    for bad, match in (("gama=1", "did you mean 'gamma'"), ("rollout.workrs=1", "did you mean 'workers'"),
                       ("lr.x=1", "'lr' has no settings of its own"), ("lr", "key=value")):  # fmt: skip
        with pytest.raises(ValueError, match=match):
            upgrade_args(["--set", bad], sets=PPOConfig)


def test_profile_string_becomes_typed_profile_flags():
    args, notes = upgrade_args(["--profile", "rl4vla:random_episodes=true, reposition=place"], profile=True)
    assert args == ["--profile", "rl4vla", "--profile.random-episodes", "True", "--profile.reposition", "place"]  # fmt: skip
    assert notes == ["--profile rl4vla:random_episodes=true, reposition=place is deprecated; use --profile rl4vla "
                     "--profile.random-episodes True --profile.reposition place"]  # fmt: skip
    assert upgrade_args(["--profile", "rl4vla"], profile=True) == (["--profile", "rl4vla"], [])


def test_profile_options_text_is_run_json_form():
    opts = ProfileOptions(random_episodes=True, eval_temperature=0.5)
    assert opts.text() == "eval_temperature=0.5,random_episodes=true"
    assert ProfileOptions.parse(opts.text()) == opts
