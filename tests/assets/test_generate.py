"""The real diffusers StableDiffusionControlNetPipeline, with tiny random models, end to end into a table pack."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest

from tests.assets.helpers import DEFAULT_VIEW, synthetic_render
from vla_gen_bench.assets import packs, sdgen
from vla_gen_bench.assets.store import AssetError
from vla_gen_bench.paths import repo_root

OPEN = sdgen.GateConfig(edge_min=-1.0)  # random tiny models draw no table: only the duplicate gate applies


@pytest.fixture(scope="module")
def prompts():
    return sdgen.load_prompts(repo_root() / "asset_pipeline" / "prompts.toml")


@pytest.fixture(scope="module")
def render():
    rgb, depth, _ = synthetic_render(64)
    return rgb, depth


def _generate(root, prompts, render, cfg, generator, **kw):
    kw = {"n_train": 2, "n_unseen": 1, "seed": 7, "gates": OPEN, **kw}
    return sdgen.generate_pack(
        root, "tiny", prompts, *render, DEFAULT_VIEW, sd=cfg, generator=generator, **kw
    )


@pytest.fixture(scope="module")
def pack(tmp_path_factory, prompts, render, tiny_cfg, tiny_generator):
    root = tmp_path_factory.mktemp("packs") / "tiny"
    return root, _generate(root, prompts, render, tiny_cfg, tiny_generator)


def test_generator_is_seeded_and_conditioned(tiny_generator, render):
    controls = sdgen.control_images(*render)
    a = tiny_generator("oak table", "text", controls, seed=1)
    assert a.shape == (64, 64, 3) and a.dtype == np.uint8 and a.std() > 0
    assert np.array_equal(a, tiny_generator("oak table", "text", controls, seed=1))
    assert not np.array_equal(a, tiny_generator("oak table", "text", controls, seed=2))
    other = {k: np.ascontiguousarray(v[::-1]) for k, v in controls.items()}  # upside down
    assert not np.array_equal(a, tiny_generator("oak table", "text", other, seed=1)), (
        "the controls must matter"
    )


def test_cpu_generation_warns_about_time(tiny_cfg):
    with pytest.warns(RuntimeWarning, match="hour per 512 px image"):
        sdgen.TableGenerator(tiny_cfg)


def test_pack_manifest_records_how_every_image_was_made(pack, tiny_cfg):
    root, m = pack
    assert (
        m["format"] == "vgb-table-pack"
        and m["source"] == "sd-controlnet"
        and m["counts"] == {"train": 2, "unseen": 1}
    )
    g = m["generator"]
    assert g["pipeline"] == "StableDiffusionControlNetPipeline" and g["steps"] == 2 and g["guidance"] == 7.5
    assert g["base_model"]["id"] == tiny_cfg.base_model and g["base_model"]["revision"].startswith("local:")
    assert [(c["type"], c["scale"]) for c in g["controlnets"]] == [("canny", 0.6), ("depth", 1.0)]
    assert m["control"]["types"] == ["canny", "depth"] and (root / m["control"]["canny"]["file"]).exists()
    assert m["gates"]["dup_max"] == 0.04 and m["generation_size"] == [64, 64]
    for e in m["entries"]:
        p = e["params"]
        assert e["kind"] == "table" and e["source"] == "sd-controlnet" and isinstance(e["seed"], int)
        assert p["view"]["aligned"] is True and p["view"]["width"] == 224
        assert p["prompt"].startswith(p["prompt"].split(",")[0]) and p["negative_prompt"]
        assert set(p["scores"]) == {"edge", "dup_distance", "dup_of"}
        assert len(e["sha256"]) == 64 and (root / e["file"]).exists()
    assert [e["split"] for e in m["entries"]] == ["train", "train", "unseen"]
    assert json.loads((root / "manifest.json").read_text())["pack_hash"] == m["pack_hash"]


def test_pack_loads_with_only_its_own_tables(pack, store):
    root, m = pack
    s = packs.load_pack(root, base=store)
    assert s.ids("table") == [e["id"] for e in m["entries"]]
    assert s.ids("table", "unseen") == ["sd_white_marble"]
    assert s.ids("object") == store.ids("object") and s.ids("overlay") == store.ids("overlay")
    img = s.image("sd_light_oak")
    assert img.shape == (224, 224, 3) and "view" in s.entry("sd_light_oak").params
    assert s.table_pack["hash"] == m["pack_hash"] and s.pack_hash != store.pack_hash
    assert s.verify() == []


def test_manifest_and_hash_are_deterministic(pack, tmp_path, prompts, render, tiny_cfg, tiny_generator):
    root, m = pack
    again = _generate(tmp_path / "tiny", prompts, render, tiny_cfg, tiny_generator)
    assert again == m
    assert (tmp_path / "tiny" / "manifest.json").read_bytes() == (root / "manifest.json").read_bytes()
    other_seed = _generate(tmp_path / "seed8", prompts, render, tiny_cfg, tiny_generator, seed=8)
    assert other_seed["pack_hash"] != m["pack_hash"]


class _Crash:
    """Wraps a generator and raises after ``n`` images, as a kill would."""

    def __init__(self, inner, n):
        self.inner, self.n, self.calls = inner, n, 0

    def __call__(self, *a, **k):
        if self.calls == self.n:
            raise KeyboardInterrupt
        self.calls += 1
        return self.inner(*a, **k)

    def models(self):
        return self.inner.models()


def test_interrupted_generation_resumes_per_image(pack, tmp_path, prompts, render, tiny_cfg, tiny_generator):
    root, m = pack
    crash = _Crash(tiny_generator, 2)
    with pytest.raises(KeyboardInterrupt):
        _generate(tmp_path / "p", prompts, render, tiny_cfg, crash)
    assert not (tmp_path / "p" / "manifest.json").exists()
    with pytest.raises(AssetError, match="generation did not finish"):
        packs.load_pack(tmp_path / "p")
    resume = _Crash(tiny_generator, 99)
    assert _generate(tmp_path / "p", prompts, render, tiny_cfg, resume) == m
    assert resume.calls == 1, "only the missing image is generated again"
    nothing = _Crash(tiny_generator, 0)
    assert _generate(tmp_path / "p", prompts, render, tiny_cfg, nothing) == m  # complete: no model needed
    # a larger pack extends this one: existing slots are kept (their seeds do not depend on the counts)
    bigger = _generate(tmp_path / "p", prompts, render, tiny_cfg, _Crash(tiny_generator, 99), n_train=3)
    assert {e["id"]: e["sha256"] for e in m["entries"]}.items() <= {
        e["id"]: e["sha256"] for e in bigger["entries"]
    }.items()


def test_resume_with_other_settings_is_refused(pack, prompts, render, tiny_cfg, tiny_generator):
    root, _ = pack
    with pytest.raises(AssetError, match=r"other settings \(differ: seed\)"):
        _generate(root, prompts, render, tiny_cfg, tiny_generator, seed=9)


def test_gate_rejections_retry_and_fail_with_the_reasons(tmp_path, prompts, render, tiny_cfg, tiny_generator):
    gates = sdgen.GateConfig(
        edge_min=-1.0, dup_max=1.0, max_attempts=2
    )  # everything after the first is a duplicate
    with pytest.raises(sdgen.GateFailure) as err:
        _generate(tmp_path / "p", prompts, render, tiny_cfg, tiny_generator, gates=gates)
    assert len(err.value.failed) == 2 and "near-duplicate of sd_light_oak" in str(err.value)
    log = [json.loads(x) for x in (tmp_path / "p" / "generation" / "attempts.jsonl").read_text().splitlines()]
    assert [r["accepted"] for r in log] == [True, False, False, False, False]
    assert len({r["seed"] for r in log}) == 5, "each retry uses a new seed"
    assert all((tmp_path / "p" / r["file"]).exists() for r in log)
    assert not (tmp_path / "p" / "manifest.json").exists()
    # the edge gate, too, with the image's score in the reason
    with pytest.raises(sdgen.GateFailure, match=r"edge score -?[0-9.]+ < 1.01"):
        _generate(tmp_path / "q", prompts, render, tiny_cfg, tiny_generator,
                  gates=sdgen.GateConfig(edge_min=1.01, max_attempts=1))  # fmt: skip


def test_rejected_attempts_are_listed_in_the_manifest(tmp_path, prompts, render, tiny_cfg, tiny_generator):
    # find a threshold that rejects some first attempts but not all: between the images' nearest distances
    m0 = _generate(tmp_path / "probe", prompts, render, tiny_cfg, tiny_generator, n_train=3)
    dists = sorted(
        e["params"]["scores"]["dup_distance"] for e in m0["entries"] if e["params"]["scores"]["dup_of"]
    )
    gates = sdgen.GateConfig(edge_min=-1.0, dup_max=(dists[0] + dists[1]) / 2, max_attempts=8)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            m = _generate(tmp_path / "p", prompts, render, tiny_cfg, tiny_generator, n_train=3, gates=gates)
        except sdgen.GateFailure:
            pytest.skip("random tiny images too similar for this threshold")
    assert m["rejected"] and all("near-duplicate" in r["reason"] for r in m["rejected"])
    assert all(e["params"]["scores"]["dup_distance"] > gates.dup_max for e in m["entries"][1:])
    assert {r["file"] for r in m["rejected"]}.isdisjoint(e["file"] for e in m["entries"])


def test_a_deleted_image_is_regenerated_identically(
    pack, tmp_path, prompts, render, tiny_cfg, tiny_generator, store
):
    _, m = pack
    root = tmp_path / "p"
    _generate(root, prompts, render, tiny_cfg, tiny_generator)
    (root / m["entries"][1]["file"]).unlink()
    with pytest.raises(AssetError, match="image file missing"):
        packs.load_pack(root, base=store)
    redo = _Crash(tiny_generator, 99)
    assert _generate(root, prompts, render, tiny_cfg, redo) == m
    assert redo.calls == 1 and packs.load_pack(root, base=store).verify() == []


@pytest.mark.filterwarnings("ignore::UserWarning")  # huggingface_hub deprecation notices from diffusers
def test_unavailable_models_are_clear_errors(tiny_cfg, tmp_path):
    from dataclasses import replace

    with pytest.raises(AssetError, match="model folder './no/such/folder' not found"):
        sdgen.TableGenerator(replace(tiny_cfg, base_model="./no/such/folder"))
    with pytest.raises(AssetError, match="is not a diffusers model folder"):
        sdgen.TableGenerator(replace(tiny_cfg, canny_model=str(tmp_path)))
    with pytest.raises(AssetError, match="cannot load 'nobody/no-such-controlnet'.*network access"):
        sdgen.TableGenerator(replace(tiny_cfg, depth_model="nobody/no-such-controlnet"))  # HF_HUB_OFFLINE=1


def test_generate_command_fails_early_and_clearly(tmp_path, capsys):
    from vla_gen_bench.cli import main

    # through the CLI: the simulator's render it wires in is imported only once the inputs are valid
    assert main(["assets", "generate-tables", "--pack", "x", "--prompts", str(tmp_path / "nope.toml"),
                 "--out", str(tmp_path / "x")]) == 2  # fmt: skip
    assert "cannot read prompts file" in capsys.readouterr().err
    assert main(["assets", "generate-tables", "--pack", "../x"]) == 2
    assert "invalid pack name" in capsys.readouterr().err
    assert not (tmp_path / "x").exists(), "nothing is rendered or written before the inputs are valid"
