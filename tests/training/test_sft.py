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
            name, demo, sft = build_configs(TrainSFT(preset=preset, warmup=warmup))
            assert demo.variant == "ind" and demo.seed not in (0, 1, 2)
            assert sft.eval_camera == demo.camera and sft.demos == demo.out
    name, demo, sft = build_configs(TrainSFT(preset="tiny", demos=50, set=("lr=3e-4",), out=Path("x")))
    assert (sft.lr, sft.num_demos, sft.out, name) == (3e-4, 50, Path("x"), "sft_tiny")
    with pytest.raises(ValueError, match="did you mean 'lr'"):
        build_configs(TrainSFT(set=("lrr=1",)))
    assert replace(sft, lr=1.0).lr == 1.0


def test_train_baseline_refuses_a_recipe_on_a_test_variant(tmp_path):
    from vla_gen_bench.training.commands import TrainSFT, train_sft

    recipe = tmp_path / "bad.toml"
    recipe.write_text(
        f'name = "bad"\n[demos]\nvariant = "unseen_table"\nepisodes = 2\nout = "{tmp_path / "d"}"\n'
        f'[sft]\ninit = "micro"\nout = "{tmp_path / "run"}"\n'
    )
    assert train_sft(TrainSFT(recipe=recipe)) == 2
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
