import re

import numpy as np
import pytest

from vla_gen_bench.policies.registry import PolicyError, resolve_policy


class Constant:
    """A user policy loaded through 'module:Class'."""

    def __init__(self):
        self.spec = None
        self.metadata = {}

    def reset(self, instruction):
        pass

    def act(self, obs):
        return np.zeros(7)


def test_builtin_policies_resolve():
    assert resolve_policy("scripted").spec.privileged
    assert not resolve_policy("random").spec.privileged
    a = resolve_policy("zero").act({})
    assert a.shape == (7,) and a[6] == 1.0


def test_random_policy_is_seeded_and_in_bounds():
    a = [resolve_policy("random", seed=3).act({}) for _ in range(2)]
    assert np.array_equal(a[0], a[1])
    assert np.all(np.abs(a[0][:3]) <= 0.02) and a[0][6] in (-1.0, 1.0)


def test_module_class_policy():
    p = resolve_policy("tests.policies.test_registry:Constant")
    assert p.act({}).shape == (7,)


@pytest.mark.parametrize(
    "spec,msg",
    [("scriptd", "did you mean 'scripted'"), ("no_such_module_xyz:Cls", "cannot import module"),
     ("tests.policies.test_registry:Nope", "has no attribute 'Nope'"),
     ("tests.policies.test_registry:PolicyError", "does not implement the Policy protocol"),
     ("ws://localhost:1", "cannot connect to a policy server at ws://localhost:1"),
     ("openvla:/no/such/checkpoint", "does not exist")],
)  # fmt: skip
def test_bad_policy_strings(spec, msg):
    with pytest.raises(PolicyError, match=msg):
        resolve_policy(spec)


# ---------------------------------------------------------------------------------------------- modules that do not import
MODULES = {
    "vgb_syntax_policy": "import numpy as np\n\n\nclass P:\n    def act(self, obs:\n        pass\n",
    "vgb_raising_policy": "import os\n\nX = 1\nraise RuntimeError('no GPU here')\n",
    "vgb_deep_policy": "import json\n\n\ndef load():\n    return json.loads('{nope')\n\n\nWEIGHTS = load()\n",
    "vgb_missing_dep_policy": "import os\nimport vgb_not_installed_dependency\n",
}


@pytest.fixture
def user_modules(tmp_path, monkeypatch):
    for name, text in MODULES.items():
        (tmp_path / f"{name}.py").write_text(text)
    monkeypatch.syspath_prepend(str(tmp_path))
    return tmp_path


@pytest.mark.parametrize(
    "module,expected",
    [("vgb_syntax_policy", r"SyntaxError at {d}/vgb_syntax_policy\.py:5: .*python -m py_compile"),
     ("vgb_raising_policy", r"raised RuntimeError: no GPU here at {d}/vgb_raising_policy\.py:4; .*python -c "
                            r"'import vgb_raising_policy'"),
     # raised inside json, reported at the user's line that led there, and where it was raised
     ("vgb_deep_policy", r"raised JSONDecodeError: .* at {d}/vgb_deep_policy\.py:5 \(raised in .*json.*\.py:\d+\)"),
     # a dependency the module imports is missing: not the PYTHONPATH hint about the module itself
     ("vgb_missing_dep_policy", r"raised ModuleNotFoundError: No module named 'vgb_not_installed_dependency' at "
                                r"{d}/vgb_missing_dep_policy\.py:2")],
)  # fmt: skip
def test_a_module_that_does_not_import_is_one_line_naming_file_and_line(user_modules, module, expected):
    from vla_gen_bench.policies.registry import check_policy

    pattern = expected.format(d=re.escape(str(user_modules)))
    for call in (lambda: check_policy(f"{module}:P"), lambda: resolve_policy(f"{module}:P")):
        with pytest.raises(PolicyError, match=pattern) as e:
            call()
        assert "\n" not in str(e.value) and "PYTHONPATH" not in str(e.value)
        assert e.value.__cause__ is None and e.value.__suppress_context__  # no chained traceback to print


@pytest.mark.parametrize(
    "argv,expected",
    [(["evaluate", "--policy", "vgb_syntax_policy:P", "--suite", "ind"], "vgb_syntax_policy.py:5"),
     (["serve", "--policy", "vgb_raising_policy:P", "--port", "0"], "vgb_raising_policy.py:4")],
)  # fmt: skip
def test_vgb_evaluate_and_serve_refuse_a_broken_module_in_one_line(user_modules, tmp_path, argv, expected):
    import os
    import subprocess
    import sys

    if argv[0] == "evaluate":
        argv = [*argv, "--out", str(tmp_path / "run")]
    env = {**os.environ, "PYTHONPATH": str(user_modules), "OMP_NUM_THREADS": "1"}
    p = subprocess.run([sys.executable, "-m", "vla_gen_bench.cli", *argv], env=env, capture_output=True, text=True,
                       timeout=120)  # fmt: skip
    err = p.stderr.strip()
    assert p.returncode == 2, err
    assert "Traceback" not in err and len(err.splitlines()) == 1 and expected in err, err
    assert not (tmp_path / "run").exists()


# ---------------------------------------------------------------------------------------------- the --policy string
@pytest.mark.parametrize(
    "text, fields",
    [("scripted", {"kind": "scripted"}), ("scripted-smooth", {"kind": "scripted-smooth"}),
     ("openvla:runs/x/final", {"kind": "openvla", "path": "runs/x/final"}),
     ("openvla:/abs/a:b", {"kind": "openvla", "path": "/abs/a:b"}),
     ("ws://h:8000?timeout=7", {"kind": "ws", "url": "ws://h:8000?timeout=7"}),
     ("wss://h:1", {"kind": "ws", "url": "wss://h:1"}),
     ("pkg.mod:Outer.Cls", {"kind": "plugin", "module": "pkg.mod", "cls": "Outer.Cls"})],
)  # fmt: skip
def test_policy_string_is_parsed_once_into_a_spec_and_given_back(text, fields):
    from vla_gen_bench.policies.registry import PolicySpec

    spec = PolicySpec.parse(text)
    assert {k: getattr(spec, k) for k in fields} == fields
    assert str(spec) == text and PolicySpec.parse(spec) is spec  # run.json's "policy" stays the string given


@pytest.mark.parametrize(
    "text, match",
    [("openvla:", "needs the checkpoint folder"), ("pkg mod:C", "dotted Python names"), ("mod:", "dotted"),
     ("/abs/path", "unknown policy"), ("zeros", "did you mean 'zero'")],
)  # fmt: skip
def test_bad_policy_strings_are_refused_by_the_parser(text, match):
    from vla_gen_bench.policies.registry import PolicySpec

    with pytest.raises(PolicyError, match=match):
        PolicySpec.parse(text)


def test_policy_spec_round_trips_any_accepted_string():
    from hypothesis import given
    from hypothesis import strategies as st

    from vla_gen_bench.policies.registry import PolicySpec

    name = st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,5}", fullmatch=True)
    texts = st.one_of(
        st.sampled_from(["scripted", "scripted-smooth", "random", "zero"]),
        st.text(min_size=1, max_size=12).map(lambda p: "openvla:" + p),
        st.from_regex(r"wss?://[a-z0-9.]{1,8}:\d{1,5}(\?timeout=\d{1,3})?", fullmatch=True),
        st.tuples(st.lists(name, min_size=1, max_size=3), st.lists(name, min_size=1, max_size=2)).map(
            lambda t: ".".join(t[0]) + ":" + ".".join(t[1])
        ),
    )

    @given(texts)
    def check(text):
        spec = PolicySpec.parse(text)
        assert str(spec) == text and PolicySpec.parse(str(spec)) == spec

    check()


def test_options_reach_the_adapter_typed():
    from vla_gen_bench.options import PolicyOptions

    a = resolve_policy("random", PolicyOptions(seed=3)).act({})
    assert np.array_equal(a, resolve_policy("random", seed=3).act({}))
    with pytest.raises(
        PolicyError, match=r"does not accept option\(s\) 'temperature' \(--policy.temperature\)"
    ):
        resolve_policy("tests.policies.test_registry:Constant", PolicyOptions(temperature=0.6))
