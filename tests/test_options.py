"""key=value options shared by --policy-arg and --set."""

import pytest

from vla_gen_bench.options import parse_key_values


def test_values_are_json_when_they_parse():
    assert parse_key_values(["seed=3", "name=x", "t=0.6", "flag=true", "eq=a=b"]) == \
        {"seed": 3, "name": "x", "t": 0.6, "flag": True, "eq": "a=b"}  # fmt: skip


@pytest.mark.parametrize("bad", ["noequals", "=3"])
def test_malformed_items_name_the_flag(bad):
    with pytest.raises(ValueError, match="--set must be key=value"):
        parse_key_values([bad], "--set")
