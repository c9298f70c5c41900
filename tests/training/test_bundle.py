"""Reference-checkpoint bundles (``vgb model bundle`` / ``vgb model verify``): a tiny real SFT checkpoint, a run folder
and evaluation folders written with the evaluator's own record writers."""

from __future__ import annotations

import hashlib
import json
import shutil
from importlib import resources

import pytest

from tests.training.test_dataset import _write_dataset
from vla_gen_bench.training import bundle
from vla_gen_bench.training.bundle import BundleError, bundle_checkpoint, dataset_fingerprint, verify_bundle


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A 2-step micro SFT run: ``run/`` with ``final/`` and ``checkpoints/step_000002/`` (which has
    trainer_state.pt), a DONE file, and the demonstration folder it trained on."""
    from vla_gen_bench.training.sft import SFTConfig, train

    root = tmp_path_factory.mktemp("bundle")
    _write_dataset(root / "demos", n_episodes=3, t=10)
    train(SFTConfig(demos=root / "demos", out=root / "run", init="micro", lora_rank=0, batch_size=4, max_steps=2,
                    save_every=2, log_every=1, tensorboard=False, device="cpu",
                    extra={"recipe": "sft_tiny.toml", "recipe_name": "sft_tiny"}), progress=False)  # fmt: skip
    (root / "run" / "DONE").write_text(json.dumps({"train_wall_s": 12.5, "collect_wall_s": 3.0}))
    return root


def _sha(path) -> str:
    from vla_gen_bench.models.checkpoint import checkpoint_fingerprint

    return checkpoint_fingerprint(path)


def _eval_folder(path, sha: str | None, successes=(True, False, False)):
    """A minimal evaluation folder as ``vgb evaluate`` writes it (run.json + hash-chained episodes.jsonl)."""
    from vla_gen_bench.eval import chain, records

    path.mkdir(parents=True)
    meta = {"policy": "openvla", "checkpoint": "runs/x/final", "temperature": 0.6}
    if sha is not None:
        meta["checkpoint_sha256"] = sha
    run = records.RunInfo(policy="openvla:runs/x/final", policy_id="p", policy_metadata=meta,
                          policy_args={"temperature": 0.6}, suite="ind", suite_hash="s", catalog_hash="c",
                          asset_pack_hash="a", control="ind", variants={"ind": {"axis": "in-distribution"}},
                          seeds=(0,), episodes_per_seed=len(successes), camera="fast", versions={},
                          created="2026-01-01T00:00:00+00:00")  # fmt: skip
    records.write_run(path, run)
    head = chain.genesis(run.to_dict())
    for i, ok in enumerate(successes):
        rec = records.EpisodeRecord(variant="ind", axis="in-distribution", split="train", seed=0, episode=i,
                                    policy=run.policy, success=ok, success_once=ok, grasped=ok,
                                    failure="success" if ok else "never_grasped", instruction="put x on plate")  # fmt: skip
        head = records.append(path / records.EPISODES, rec, head)
    return path


def test_bundle_writes_the_card_and_verifies(trained, tmp_path):
    from vla_gen_bench.eval.stats import wilson_interval

    step = trained / "run" / "checkpoints" / "step_000002"
    assert (step / "trainer_state.pt").is_file()
    sha = _sha(trained / "run" / "final")
    assert _sha(step) == sha
    ev = _eval_folder(tmp_path / "eval", sha)
    out = bundle_checkpoint(step, tmp_path / "ckpts" / "sft-micro", run_dir=trained / "run", evals=[ev],
                            note="test bundle")  # fmt: skip

    assert not (out / "trainer_state.pt").exists() and not list(out.glob("*.pt"))
    card = json.loads((out / "card.json").read_text())
    assert card["name"] == "sft-micro" and card["note"] == "test bundle"
    assert card["checkpoint_sha256"] == sha == _sha(out)
    assert card["left_behind"] == ["trainer_state.pt"]
    assert card["parameters"] > 1e6 and card["size_bytes"] == sum(f["bytes"] for f in card["files"].values())
    assert "model.safetensors" in card["files"] and "config.json" in card["files"]
    assert set(card["git"]) == {"commit", "dirty"}
    t = card["training"]
    text = (resources.files("vla_gen_bench.recipes") / "sft_tiny.toml").read_bytes()
    assert (
        t["recipe"]["file"] == "sft_tiny.toml" and t["recipe"]["sha256"] == hashlib.sha256(text).hexdigest()
    )
    assert t["dataset"]["sha256"] == dataset_fingerprint(trained / "demos")["sha256"]
    assert t["dataset"]["episodes"] == 3 and t["dataset"]["num_demos"] is None
    assert t["cost"] == {"steps": 2, "samples": 8, "train_wall_s": 12.5, "train_wall_s_from": "DONE",
                         "collect_wall_s": 3.0, "device": "cpu", "threads": 0}  # fmt: skip
    lo, hi = wilson_interval(1, 3)
    (row,) = card["evals"]
    assert (
        row["folder"] == str(ev) and row["suite"] == "ind" and row["variant"] == "ind" and row["seeds"] == [0]
    )
    assert (row["episodes"], row["successes"], row["complete"]) == (3, 1, True)
    assert row["success_rate"] == pytest.approx(1 / 3) and row["wilson_low"] == pytest.approx(lo, abs=1e-6)
    assert row["wilson_high"] == pytest.approx(hi, abs=1e-6)
    assert (row["temperature"], row["camera"], row["checkpoint_sha256"]) == (0.6, "fast", sha)
    md = (out / "MODEL_CARD.md").read_text()
    assert sha in md and "sft_tiny.toml" in md and "| 1 / 3 | 33.3 % |" in md and str(ev) in md
    # the tiny preset's CNN featurizer and small vocabulary: its card says the official OpenVLA code cannot load it
    assert isinstance(card["compatibility"], list) and any("featurizer" in r for r in card["compatibility"])
    assert "* loads in vgb only: " in md
    assert verify_bundle(out)["checkpoint_sha256"] == sha
    # bundling again into the same folder replaces the earlier bundle
    bundle_checkpoint(trained / "run" / "final", out)
    assert json.loads((out / "card.json").read_text())["training"] is None
    assert not (out.parent / "sft-micro.tmp").exists()


def test_a_flipped_byte_fails_verification(trained, tmp_path, capsys):
    from vla_gen_bench.cli import main

    out = tmp_path / "b"
    assert main(["model", "bundle", "--checkpoint", str(trained / "run" / "final"), "--out", str(out)]) == 0
    assert main(["model", "verify", str(out)]) == 0
    weights = out / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[len(data) // 2] ^= 0x01
    weights.write_bytes(bytes(data))
    with pytest.raises(BundleError, match=r"model\.safetensors.*checkpoint_sha256 is .*vgb model bundle"):
        verify_bundle(out)
    capsys.readouterr()
    assert main(["model", "verify", str(out)]) == 1
    assert "sha256 differs from the card: model.safetensors" in capsys.readouterr().err
    (out / "model.safetensors").unlink()
    (out / "extra.bin").write_bytes(b"x")
    with pytest.raises(BundleError, match=r"missing files: model\.safetensors.*does not list: extra\.bin"):
        verify_bundle(out)


def test_an_evaluation_of_other_weights_is_refused(trained, tmp_path):
    other = _eval_folder(tmp_path / "other", "0" * 64)
    with pytest.raises(BundleError, match="evaluated other weights"):
        bundle_checkpoint(trained / "run" / "final", tmp_path / "out", evals=[other])
    unsigned = _eval_folder(tmp_path / "unsigned", None)
    with pytest.raises(BundleError, match="no checkpoint_sha256"):
        bundle_checkpoint(trained / "run" / "final", tmp_path / "out", evals=[unsigned])
    assert not (tmp_path / "out").exists() and not (tmp_path / "out.tmp").exists()


def test_size_limit_and_foreign_out_folder_are_refused(trained, tmp_path, monkeypatch):
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "notes.txt").write_text("mine")
    with pytest.raises(BundleError, match="is not a bundle"):
        bundle_checkpoint(trained / "run" / "final", busy)
    monkeypatch.setattr(bundle, "MAX_BYTES", 1_000_000)
    with pytest.raises(
        BundleError, match=r"would take 5\.\d MB .*over the 1\.0 MB limit.*model\.safetensors"
    ):
        bundle_checkpoint(trained / "run" / "final", tmp_path / "big")
    assert not (tmp_path / "big").exists()


def test_dataset_fingerprint(tmp_path):
    _write_dataset(tmp_path / "d", n_episodes=3, t=4)
    full = dataset_fingerprint(tmp_path / "d")
    assert (full["episodes"], full["failed"]) == (3, 0)
    assert dataset_fingerprint(tmp_path / "d") == full
    prefix = dataset_fingerprint(tmp_path / "d", max_episodes=2)
    assert prefix["episodes"] == 2 and prefix["sha256"] != full["sha256"]
    (tmp_path / "d" / "episodes" / "s1000_e000009.tmp123.npz").write_bytes(b"partial")  # a write in progress
    (tmp_path / "d" / "failed").mkdir(exist_ok=True)
    (tmp_path / "d" / "failed" / "s1000_e000005.json").write_text("{}")
    again = dataset_fingerprint(tmp_path / "d")
    assert again["sha256"] == full["sha256"] and again["failed"] == 1
    images = tmp_path / "d" / "episodes" / "s1000_e000002.images.npy"
    data = bytearray(images.read_bytes())
    data[-1] ^= 0xFF
    images.write_bytes(bytes(data))
    assert dataset_fingerprint(tmp_path / "d")["sha256"] != full["sha256"]
    assert (
        dataset_fingerprint(tmp_path / "d", max_episodes=2)["sha256"] == prefix["sha256"]
    )  # the first two only
    with pytest.raises(BundleError, match="has 3 episodes, the run trained on 5"):
        dataset_fingerprint(tmp_path / "d", max_episodes=5)
    shutil.rmtree(tmp_path / "d" / "episodes")
    (tmp_path / "d" / "dataset.json").unlink()
    with pytest.raises(BundleError, match="no dataset.json"):
        dataset_fingerprint(tmp_path / "d")


def test_a_dagger_round_card_counts_the_parent_runs_collection(trained, tmp_path):
    """``--run <out>/dagger1``: the round's DONE has only its own collection; the parent's DONE adds the
    demonstrator's (and, for later rounds, earlier rounds' collection and training)."""
    out = tmp_path / "v12"
    shutil.copytree(trained / "run", out / "dagger2")
    (out / "dagger2" / "DONE").write_text(json.dumps({"train_wall_s": 40.0, "collect_wall_s": 8.0}))
    rounds = [{"round": 1, "final": str(out / "dagger1" / "final"), "collect_wall_s": 5.0, "train_wall_s": 30.0},
              {"round": 2, "final": str(out / "dagger2" / "final"), "collect_wall_s": 8.0, "train_wall_s": 40.0}]  # fmt: skip
    (out / "DONE").write_text(json.dumps({"collect_wall_s": 100.0, "dagger": {"rounds": rounds}}))
    cost = bundle.training_info(out / "dagger2")["cost"]
    assert cost["collect_wall_s"] == 113.0
    assert cost["collect_parts"] == {"demonstrations": 100.0, "dagger round 1": 5.0, "dagger round 2": 8.0}
    assert cost["earlier_train_wall_s"] == 30.0 and cost["train_wall_s"] == 40.0
    # a plain run folder (no DAgger parent) keeps its own DONE's figure
    assert bundle.training_info(trained / "run")["cost"]["collect_wall_s"] == 3.0
    assert "collect_parts" not in bundle.training_info(trained / "run")["cost"]


def test_the_cards_evaluate_line_names_the_control_arm_of_the_evaluated_family():
    from vla_gen_bench.training.bundle import _control_arm

    assert _control_arm({}) == "ind"
    assert _control_arm({"evals": [{"variant": "unseen_table"}]}) == "ind"
    assert _control_arm({"evals": [{"variant": "drawer_close_unseen_table"}]}) == "drawer_close_ind"
    assert _control_arm({"evals": [{"variant": "no_such_line"}, {"variant": "push_ind"}]}) == "push_ind"
