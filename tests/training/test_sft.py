"""SFT: the action-token loss learns, checkpoints resume at the same step, test pools are refused, recipes parse."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from tests.training.test_dataset import _write_dataset


@pytest.fixture(scope="module")
def demos(tmp_path_factory):
    root = tmp_path_factory.mktemp("demos")
    _write_dataset(root, n_episodes=3, t=10)
    return root


def _cfg(demos, out, **kw):
    from vla_gen_bench.training.sft import SFTConfig

    base = dict(demos=demos, out=out, init="micro", lora_rank=0, batch_size=4, max_steps=4, save_every=2,
                log_every=1, lr=1e-3, label_sigma=1.0, shift_aug=2, tensorboard=False)  # fmt: skip
    return SFTConfig(**{**base, **kw})


def _eval_net_and_batch(demos, tmp_path, n: int = 4):
    """A random-init micro+conv network in eval mode and a batch of the first ``n`` demo steps."""
    from vla_gen_bench.models.checkpoint import load_openvla
    from vla_gen_bench.training.dataset import DemoDataset
    from vla_gen_bench.training.sft import Batcher, init_from_preset

    init_from_preset("micro", tmp_path / "init", featurizer="conv")
    vla = load_openvla(tmp_path / "init", device="cpu")
    ds = DemoDataset(demos)
    vla.config = vla.config.with_norm_stats(ds.statistics("k"))
    return vla.network.eval(), Batcher(vla, "k")([ds[i] for i in range(n)])


def test_soft_targets_and_batch_order():
    import torch

    from vla_gen_bench.training.sft import batch_indices, soft_targets

    t = soft_targets(torch.tensor([0, 100, 255]), 256, 2.0)
    assert torch.allclose(t.sum(-1), torch.ones(3))
    assert t.argmax(-1).tolist() == [0, 100, 255]
    assert t[1, 99] > t[1, 97] > 0 and t[1, 99] == t[1, 101]
    assert torch.equal(soft_targets(torch.tensor([3]), 8, 0.0), torch.eye(8)[[3]])
    a = [batch_indices(10, 4, m, seed=1) for m in range(5)]
    assert np.array_equal(
        a[2], batch_indices(10, 4, 2, seed=1)
    )  # pure function: resume sees the same batches
    first_epoch = np.concatenate(a)[:10]
    assert sorted(first_epoch.tolist()) == list(range(10))


def test_a_few_steps_reduce_the_loss_on_a_fixed_batch(demos, tmp_path):
    import torch

    from vla_gen_bench.models.checkpoint import load_openvla
    from vla_gen_bench.training.dataset import DemoDataset
    from vla_gen_bench.training.sft import Batcher, action_token_loss, init_from_preset

    init_from_preset("micro", tmp_path / "init", featurizer="conv")
    vla = load_openvla(tmp_path / "init", device="cpu")
    ds = DemoDataset(demos)
    vla.config = vla.config.with_norm_stats(ds.statistics("k"))
    batch = Batcher(vla, "k")([ds[i] for i in range(8)])
    net = vla.network.train()
    opt = torch.optim.AdamW(net.parameters(), lr=1e-3)
    losses = []
    for _ in range(15):
        loss, stats = action_token_loss(net, batch["pixel_values"], batch["input_ids"], batch["attention_mask"],
                                        batch["action_tokens"], label_sigma=0.0)  # fmt: skip
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert max(losses[-3:]) < 0.6 * losses[0], losses
    assert 0.0 <= stats["acc"] <= 1.0


def test_train_writes_an_evaluable_checkpoint_and_resumes_at_the_same_step(demos, tmp_path):
    import torch

    from vla_gen_bench.models.checkpoint import load_openvla
    from vla_gen_bench.training.sft import latest_checkpoint, train

    straight = train(_cfg(demos, tmp_path / "a", max_steps=6), progress=False)
    # stop after 4 steps, then ask for 6: the run continues at step 4 with the same batches and optimiser state
    train(_cfg(demos, tmp_path / "b", max_steps=4), progress=False)
    assert latest_checkpoint(tmp_path / "b").name == "step_000004"
    resumed = train(_cfg(demos, tmp_path / "b", max_steps=6), progress=False)
    steps = [int(r.split(",")[0]) for r in (tmp_path / "b" / "metrics.csv").read_text().splitlines()[1:]]
    assert steps == [1, 2, 3, 4, 5, 6]
    a = load_openvla(straight, device="cpu").model.state_dict()
    b = load_openvla(resumed, device="cpu").model.state_dict()
    assert all(torch.allclose(a[k], b[k], atol=1e-6) for k in a)
    # the checkpoint carries the dataset's statistics as its only key: `--policy openvla:<dir>` needs no unnorm key
    stats = json.loads((Path(resumed) / "dataset_statistics.json").read_text())
    vla = load_openvla(resumed, device="cpu")
    assert list(vla.norm_stats) == list(stats) == ["vgb_demos"]
    pred = vla.predict_action(np.zeros((64, 64, 3), np.uint8), ["put thing0 on plate"])
    assert pred.actions.shape == (1, 7)


def test_lora_run_saves_an_adapter(demos, tmp_path):
    from vla_gen_bench.training.sft import train

    final = train(_cfg(demos, tmp_path / "lora", lora_rank=4, max_steps=2), progress=False)
    assert (final / "adapter" / "adapter_config.json").is_file()
    assert (final / "adapter" / "dataset_statistics.json").is_file()
    assert (final / "model.safetensors").is_file() and not (final / "trainer_state.pt").exists()


def test_training_on_a_test_pool_dataset_is_refused(demos, tmp_path):
    import shutil

    from vla_gen_bench.training.sft import train
    from vla_gen_bench.variants import TrainingPoolError

    bad = tmp_path / "bad"
    shutil.copytree(demos, bad)
    card = json.loads((bad / "dataset.json").read_text())
    card["config"]["variant"] = "unseen_objects"
    (bad / "dataset.json").write_text(json.dumps(card))
    with pytest.raises(TrainingPoolError):
        train(_cfg(bad, tmp_path / "run"), progress=False)
    assert not (tmp_path / "run" / "checkpoints").exists()


def test_recipes_parse_and_overrides_apply():
    from vla_gen_bench.training.commands import TrainSFT, build_configs

    for preset in ("tiny", "openvla-7b"):
        for warmup in (False, True):
            name, demo, sft = build_configs(TrainSFT.from_recipe(preset=preset, warmup=warmup))
            assert demo.variant == "ind" and demo.seed not in (0, 1, 2)
            assert sft.eval_camera == demo.camera and sft.demos == demo.out
    cmd = TrainSFT.from_recipe(preset="tiny")
    name, demo, sft = build_configs(
        replace(cmd, sft=replace(cmd.sft, out=Path("x"), lr=3e-4, num_demos=5000))
    )
    assert (sft.lr, sft.num_demos, demo.episodes, sft.out, name) == (3e-4, 5000, 5000, Path("x"), "sft_tiny")
    from vla_gen_bench.cli import upgrade

    # the deprecated --set, checked before tyro runs
    with pytest.raises(ValueError, match="did you mean 'lr'"):
        upgrade("train-baseline sft", TrainSFT, ["--set", "lrr=1"])
    assert replace(sft, lr=1.0).lr == 1.0


def test_train_baseline_refuses_a_recipe_on_a_test_variant(tmp_path):
    from vla_gen_bench.training.commands import TrainSFT, train_sft

    recipe = tmp_path / "bad.toml"
    recipe.write_text(
        f'name = "bad"\n[demos]\nvariant = "unseen_table"\nepisodes = 2\nout = "{tmp_path / "d"}"\n'
        f'[sft]\ninit = "micro"\nout = "{tmp_path / "run"}"\n'
    )
    assert train_sft(TrainSFT.from_recipe(recipe=recipe)) == 2
    assert not (tmp_path / "d" / "episodes").exists() and not (tmp_path / "run" / "checkpoints").exists()


def test_heldout_metrics_shapes(demos, tmp_path):
    from vla_gen_bench.models.checkpoint import load_openvla
    from vla_gen_bench.training.dataset import DemoDataset
    from vla_gen_bench.training.sft import heldout_metrics, init_from_preset

    init_from_preset("micro", tmp_path / "init")
    vla = load_openvla(tmp_path / "init", device="cpu")
    ds = DemoDataset(demos, max_episodes=1)
    vla.config = vla.config.with_norm_stats(ds.statistics("k"))
    m = heldout_metrics(vla, ds, batch_size=4)
    s = heldout_metrics(vla, ds, batch_size=4, shuffle_images=True)
    assert m["n"] == len(ds) and len(m["ce_per_dim"]) == 7 and len(m["bin_err_per_dim"]) == 7
    assert m["ce"] > 0 and s["shuffled_images"] and m != s
    assert len(m["decoded_bin_err_per_dim"]) == 7
    # the first token has no action prefix: free decoding and teacher forcing agree on it
    assert m["decoded_bin_err_per_dim"][0] == m["bin_err_per_dim"][0]


def test_corrupt_prefix_replaces_inputs_only_at_the_given_rate():
    import numpy as np
    import torch

    from vla_gen_bench.training.sft import corrupt_prefix

    tok = torch.full((2000, 7), 800)
    assert corrupt_prefix(tok, 0.0, 700, 256, np.random.default_rng(0)) is tok
    out = corrupt_prefix(tok, 0.5, 700, 256, np.random.default_rng(0))
    changed = (out != tok).float().mean().item()
    assert 0.45 < changed < 0.5  # 0.5 minus the 1/256 draws that land on the same bin
    assert int(out.min()) >= 700 and int(out.max()) < 956
    assert torch.equal(tok, torch.full((2000, 7), 800))  # the targets are untouched


def test_prefix_noise_feeds_the_corrupted_tokens_but_scores_the_true_ones(demos, tmp_path):
    import numpy as np
    import torch

    from vla_gen_bench.training.sft import action_token_loss, corrupt_prefix

    net, b = _eval_net_and_batch(demos, tmp_path)
    args = (net, b["pixel_values"], b["input_ids"], b["attention_mask"], b["action_tokens"])
    with torch.no_grad():
        plain, _ = action_token_loss(*args)
        same, _ = action_token_loss(*args, input_action_tokens=b["action_tokens"])
        fed = corrupt_prefix(b["action_tokens"], 1.0, net.action_begin, 256, np.random.default_rng(1))
        noisy, _ = action_token_loss(*args, input_action_tokens=fed)
    assert plain.item() == pytest.approx(same.item())
    assert noisy.item() != pytest.approx(plain.item())  # later tokens see other inputs


def test_conv_featurizer_options_coords_and_patch_grid(tmp_path):
    import numpy as np

    from vla_gen_bench.models.checkpoint import load_openvla
    from vla_gen_bench.models.vision import ConvFeaturizer
    from vla_gen_bench.training.sft import init_from_preset

    init_from_preset(
        "micro", tmp_path / "g8", featurizer="conv", image_size=128, patch_grid=8, conv_coords=True
    )
    vla = load_openvla(tmp_path / "g8", device="cpu")
    conv = [m for m in vla.network.modules() if isinstance(m, ConvFeaturizer)]
    assert conv and all(m.coords and m.num_patches == 64 for m in conv)
    assert vla.config.preset == "micro+conv128g8xy"
    assert vla.predict_action(np.zeros((1, 128, 128, 3), np.uint8), ["put a on b"]).actions.shape == (1, 7)
    with pytest.raises(ValueError, match="patch_grid"):
        init_from_preset("micro", tmp_path / "bad", featurizer="conv", image_size=128, patch_grid=3)
    with pytest.raises(ValueError, match="need featurizer=.conv."):
        init_from_preset("micro", tmp_path / "bad2", conv_coords=True)


def test_keypoint_featurizer_with_batchnorm_localises_and_standardises():
    import torch

    from vla_gen_bench.models.vision import ConvFeaturizer

    torch.manual_seed(0)
    f = ConvFeaturizer(img_size=64, patch_size=4, embed_dim=16, widths=[8, 16], keypoints=5, batchnorm=True)
    assert f.num_patches == 5
    x = torch.rand(6, 3, 64, 64)
    out = f.train()(x)
    assert out.shape == (6, 5, 16)
    # in training mode every (token, channel) is standardised over the batch (plus the position embedding)
    z = (out - f.pos_embed).reshape(6, -1)
    assert torch.allclose(z.mean(0), torch.zeros(80), atol=1e-5)
    assert f.norm.running_mean.abs().sum() > 0  # running statistics for evaluation
    assert f.eval()(x[:1]).shape == (1, 5, 16)  # batch of one at evaluation
    # a keypoint follows a bright square: its soft-argmax x moves right with the square
    f.kp_temperature.data.fill_(3.0)
    img = torch.zeros(2, 3, 64, 64)
    img[0, :, 20:28, 8:16] = 1.0
    img[1, :, 20:28, 44:52] = 1.0
    with torch.no_grad():
        att = torch.softmax(f.kp_logits(f.stages(img)).flatten(2) * f.kp_temperature.exp(), -1)
        xs = torch.linspace(-1, 1, 16)[None, :].expand(16, 16).reshape(-1)
        kx = att @ xs  # (2, k)
    assert (kx[1] - kx[0]).abs().max() > 0.05


def test_dim_weights_weight_each_action_dimension(demos, tmp_path):
    import torch

    from vla_gen_bench.training.sft import action_token_loss

    net, b = _eval_net_and_batch(demos, tmp_path)
    args = (net, b["pixel_values"], b["input_ids"], b["attention_mask"], b["action_tokens"])
    with torch.no_grad():
        plain, _ = action_token_loss(*args)
        ones, _ = action_token_loss(*args, dim_weights=[2.0] * 7)
        grip, _ = action_token_loss(*args, dim_weights=[0.0] * 6 + [1.0])
        motion, _ = action_token_loss(*args, dim_weights=[1.0] * 6 + [0.0])
        w3, _ = action_token_loss(*args, dim_weights=[1.0] * 6 + [3.0])
    assert ones.item() == pytest.approx(plain.item(), rel=1e-5)  # equal weights: the plain mean
    assert plain.item() == pytest.approx((6 * motion.item() + grip.item()) / 7, rel=1e-5)
    assert w3.item() == pytest.approx((6 * motion.item() + 3 * grip.item()) / 9, rel=1e-5)


def test_single_featurizer_and_aux_state_train_resume_and_stay_out_of_the_checkpoint(demos, tmp_path):
    import csv

    from safetensors import safe_open

    from vla_gen_bench.models.checkpoint import load_openvla
    from vla_gen_bench.models.vision import ConvFeaturizer
    from vla_gen_bench.training.sft import train

    kw = dict(featurizer="conv", conv_keypoints=4, conv_batchnorm=True, single_featurizer=True, aux_state=1.0,
              gripper_weight=3.0)  # fmt: skip
    straight = train(_cfg(demos, tmp_path / "a", max_steps=6, **kw), progress=False)
    train(_cfg(demos, tmp_path / "b", max_steps=4, **kw), progress=False)
    resumed = train(
        _cfg(demos, tmp_path / "b", max_steps=6, **kw), progress=False
    )  # the aux head resumes too
    a = load_openvla(straight, device="cpu")
    b = load_openvla(resumed, device="cpu")
    sa, sb = a.model.state_dict(), b.model.state_dict()
    assert all(np.allclose(sa[k].numpy(), sb[k].numpy(), atol=1e-6) for k in sa)
    rows = list(csv.DictReader(open(tmp_path / "b" / "metrics.csv")))
    assert [int(r["step"]) for r in rows] == [1, 2, 3, 4, 5, 6] and all(
        float(r["aux_loss"]) > 0 for r in rows
    )
    # one CNN, no fused pair; the aux head is training-only: not in the evaluable checkpoint
    assert not b.config.use_fused_vision_backbone
    assert len([m for m in b.network.modules() if isinstance(m, ConvFeaturizer)]) == 1
    with safe_open(str(Path(resumed) / "model.safetensors"), "pt") as f:
        assert not [k for k in f.keys() if "aux" in k]
    assert b.predict_action(np.zeros((1, 64, 64, 3), np.uint8), ["put thing0 on plate"]).actions.shape == (
        1,
        7,
    )
    # a run trained without the aux head cannot be resumed with it
    train(_cfg(demos, tmp_path / "c", max_steps=2), progress=False)
    with pytest.raises(ValueError, match="aux_state"):
        train(_cfg(demos, tmp_path / "c", max_steps=4, aux_state=1.0), progress=False)


def test_idle_filter_at_load_time_keeps_only_moving_steps_and_gripper_changes(demos, tmp_path, capsys):
    from vla_gen_bench.training.sft import train

    # thresholds no step passes: only the gripper changes remain (the first step and the switch at t = 5)
    train(_cfg(demos, tmp_path / "f", max_steps=1, idle_min_translation=1.0, idle_min_rotation=10.0),
          progress=False)  # fmt: skip
    assert "3 episodes, 6 steps" in capsys.readouterr().err
    train(_cfg(demos, tmp_path / "g", max_steps=1), progress=False)
    assert (
        "3 episodes, 27 steps" in capsys.readouterr().err
    )  # the stored keep mask (one idle step per episode)
    with pytest.raises(ValueError, match="idle_min_translation"):  # a run is not resumed on other data
        train(_cfg(demos, tmp_path / "g", max_steps=2, idle_min_translation=0.002), progress=False)


@pytest.mark.sim
@pytest.mark.slow
def test_train_baseline_runs_a_dagger_round(tmp_path):
    """[dagger] rounds = 1: SFT, then the final checkpoint collects learner episodes labelled by the demonstrator,
    then SFT again from scratch on demos + DAgger data; DONE and each round's folder say what ran."""
    from vla_gen_bench.training.commands import TrainSFT, train_sft

    recipe = tmp_path / "dagger.toml"
    recipe.write_text(
        f'name = "dagger_test"\n[demos]\nepisodes = 2\nworkers = 1\ncamera = "fast"\noracle = "scripted-smooth"\n'
        f'noise_xyz = 0.01\nout = "{tmp_path / "d"}"\n'
        f'[sft]\ninit = "micro"\nfeaturizer = "conv"\nimage_size = 128\nsingle_featurizer = true\naction_chunk = 4\n'
        f"lora_rank = 0\nbatch_size = 4\nmax_steps = 2\nsave_every = 2\nlog_every = 1\neval_every = 0\n"
        f'tensorboard = false\nout = "{tmp_path / "run"}"\n'
        f"[dagger]\nrounds = 1\nepisodes = 1\nseed = 1001\n"
    )
    assert train_sft(TrainSFT.from_recipe(recipe=recipe)) == 0
    run = tmp_path / "run"
    done = json.loads((run / "DONE").read_text())
    (r1,) = done["dagger"]["rounds"]
    assert done["final"] == str(run / "dagger1" / "final") == r1["final"]
    assert r1["learner"] == str(run / "final") and r1["episodes"] == 1
    card = json.loads((run / "dagger1" / "demos" / "dataset.json").read_text())
    assert card["config"]["learner"] == str(run / "final") and card["config"]["seed"] == 1001
    assert card["config"]["noise_xyz"] == 0.0 and "learner_success_rate" in card
    cfg = json.loads((run / "dagger1" / "config.json").read_text())
    assert cfg["extra_demos"] == [str(run / "dagger1" / "demos")] and cfg["demos"] == str(tmp_path / "d")
    assert (run / "dagger1" / "final" / "model.safetensors").is_file()
    assert json.loads((run / "dagger1" / "DONE").read_text())["round_of"] == str(run)


def test_train_baseline_refuses_dagger_options_that_cannot_work_before_any_work(tmp_path, capsys):
    from dataclasses import replace

    from vla_gen_bench.training.commands import DaggerConfig, TrainSFT, train_sft

    recipe = tmp_path / "r.toml"
    recipe.write_text(f'name = "r"\n[demos]\nepisodes = 2\nout = "{tmp_path / "d"}"\n'
                      f'[sft]\ninit = "micro"\nout = "{tmp_path / "run"}"\n')  # fmt: skip
    cmd = TrainSFT.from_recipe(recipe=recipe)
    ckpt = Path(__file__).resolve().parents[2] / "baselines" / "checkpoints" / "sft-tiny"
    cases = {
        "add --dagger.rounds 1": DaggerConfig(rounds=0, first_learner=ckpt),
        "no config.json": DaggerConfig(rounds=1, first_learner=tmp_path),
        "include the demonstrations' seed 1000": DaggerConfig(rounds=2, seed=999),
    }
    for message, dagger in cases.items():
        assert train_sft(replace(cmd, dagger=dagger)) == 2
        assert message in capsys.readouterr().err
    sft_cases = {"takes 0 (the whole chunk) to --action-chunk 1": {"execute": 2},
                 "must be >= 0": {"extra_until_close": -1}}  # fmt: skip
    for message, change in sft_cases.items():
        assert train_sft(replace(cmd, sft=replace(cmd.sft, **change))) == 2
        assert message in capsys.readouterr().err
    assert not (tmp_path / "d").exists() and not (tmp_path / "run" / "checkpoints").exists()
