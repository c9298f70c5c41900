"""The on-disk demonstration format and its PyTorch Dataset (no simulator: episodes are synthesised)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from vla_gen_bench.training.demos import DemoConfig, IdleFilter, save_episode, write_card


def _write_dataset(root, n_episodes=3, t=10, seed=0):
    rng = np.random.default_rng(seed)
    truth = []
    for k in range(n_episodes):
        images = rng.integers(0, 256, size=(t, 16, 16, 3), dtype=np.uint8)
        actions = rng.uniform(-0.05, 0.05, size=(t, 7)).astype(np.float32)
        actions[:, 6] = np.where(np.arange(t) < t // 2, 1.0, -1.0)
        actions[2, :6] = 0.0  # an idle step
        success = np.zeros(t, bool)
        keep = IdleFilter()(actions, success)
        states = rng.normal(size=(t, 16)).astype(np.float32)
        save_episode(root / "episodes", f"s1000_e{k:06d}", images=images, actions=actions, states=states,
                     rewards=np.zeros(t, np.float32), success=success, keep=keep, instruction=f"put thing{k} on plate",
                     variant="ind", seed=1000, episode=k,
                     spec=json.dumps({"object_xy": [[0.1 * k, -0.05]], "receptacle_xy": [[-0.1, 0.02 * k]]}))  # fmt: skip
        truth.append((images, actions, states, keep))
    write_card(root, DemoConfig(episodes=n_episodes, out=root))
    return truth


def test_round_trip(tmp_path):
    from vla_gen_bench.training.dataset import DemoDataset

    truth = _write_dataset(tmp_path)
    ds = DemoDataset(tmp_path)
    assert ds.num_episodes == 3
    assert len(ds) == sum(int(k.sum()) for *_, k in truth) == 3 * 9  # the idle step is gone
    i = 0
    for e, (images, actions, states, keep) in enumerate(truth):
        for t in np.nonzero(keep)[0]:
            item = ds[i]
            assert item["episode"] == e and item["t"] == t
            assert np.array_equal(item["image"], images[t])
            assert np.allclose(item["action"], actions[t]) and np.allclose(item["state"], states[t])
            assert item["instruction"] == f"put thing{e} on plate"
            assert np.allclose(item["scene"], [0.1 * e, -0.05, -0.1, 0.02 * e])  # initial xy from the spec
            i += 1
    assert ds[-1]["t"] == 9
    with pytest.raises(IndexError):
        ds[len(ds)]
    # images are memory-mapped, not loaded: only the episodes touched so far are open
    assert all(isinstance(a, np.memmap) for a in ds._images.values())


def test_subset_filter_override_and_statistics(tmp_path):
    from vla_gen_bench.training.dataset import DatasetError, DemoDataset

    _write_dataset(tmp_path)
    assert DemoDataset(tmp_path, max_episodes=2).num_episodes == 2
    assert len(DemoDataset(tmp_path, filter=IdleFilter(enabled=False))) == 30
    with pytest.raises(DatasetError, match="has 3 episodes"):
        DemoDataset(tmp_path, max_episodes=5)
    with pytest.raises(DatasetError, match="collect-demos"):
        DemoDataset(tmp_path / "nope")
    ds = DemoDataset(tmp_path)
    stored = json.loads((tmp_path / "dataset_statistics.json").read_text())
    assert stored == ds.stored_statistics()
    fresh = ds.statistics()["vgb_demos"]
    assert np.allclose(fresh["action"]["q01"], stored["vgb_demos"]["action"]["q01"])
    assert fresh["num_trajectories"] == 3 and fresh["num_transitions"] == len(ds)
    card = json.loads((tmp_path / "dataset.json").read_text())
    assert card["episodes_kept"] == 3 and card["steps_kept"] == len(ds) and card["status"] == "complete"


def test_dataloader_workers_reopen_memory_maps(tmp_path):
    import pickle

    from vla_gen_bench.training.dataset import DemoDataset

    _write_dataset(tmp_path)
    ds = DemoDataset(tmp_path)
    ds[0]
    clone = pickle.loads(pickle.dumps(ds))
    assert clone._images == {} and np.array_equal(clone[5]["image"], ds[5]["image"])


def test_resuming_with_another_filter_rewrites_the_keep_masks(tmp_path):
    from vla_gen_bench.training.dataset import DemoDataset
    from vla_gen_bench.training.demos import collect

    _write_dataset(tmp_path)  # episodes s1000_e000000..2 = indices 0..2 of the ind manifest for seed 1000
    assert len(DemoDataset(tmp_path)) == 27
    card = collect(DemoConfig(episodes=3, out=tmp_path, filter=IdleFilter(enabled=False)), progress=False)
    assert card["session"]["attempted_now"] == 0  # nothing to simulate
    assert len(DemoDataset(tmp_path)) == 30 and card["steps_kept"] == 30


def test_extra_folders_are_appended_in_order(tmp_path):
    """``extra`` (DAgger rounds): all episodes of each extra folder follow the main one's, images read from their
    own folder; ``max_episodes`` limits only the main folder."""
    from vla_gen_bench.training.dataset import DatasetError, DemoDataset

    main, more = tmp_path / "main", tmp_path / "dagger"
    truth = _write_dataset(main, n_episodes=2)
    extra = _write_dataset(more, n_episodes=2, seed=5)
    ds = DemoDataset(main, extra=(more,))
    assert ds.num_episodes == 4 and len(ds) == 4 * 9
    last = ds[len(ds) - 1]
    assert last["episode"] == 3 and np.array_equal(last["image"], extra[1][0][9])
    assert np.array_equal(ds[0]["image"], truth[0][0][0])
    assert DemoDataset(main, max_episodes=1, extra=(more,)).num_episodes == 3
    assert ds.statistics()["vgb_demos"]["num_trajectories"] == 4
    with pytest.raises(DatasetError, match="no episodes/"):
        DemoDataset(main, extra=(tmp_path / "nope",))


def test_extra_until_close_keeps_only_the_learner_reach_and_grasp(tmp_path):
    """``extra_until_close = n``: an extra (DAgger) episode keeps its steps up to n after its first "close" label;
    the main folder's episodes keep every step; an extra episode that never closes keeps them all."""
    from vla_gen_bench.training.dataset import DatasetError, DemoDataset

    main, more = tmp_path / "main", tmp_path / "dagger"
    _write_dataset(main, n_episodes=2)  # labels close from t = 5 on
    _write_dataset(more, n_episodes=2, seed=5)
    z = dict(np.load(more / "episodes" / "s1000_e000001.npz"))
    z["actions"][:, 6] = 1.0  # this learner episode never reaches a close label
    np.savez(more / "episodes" / "s1000_e000001.npz", **z)
    ds = DemoDataset(main, extra=(more,), extra_until_close=2)
    steps = [ds.index[ds.index[:, 0] == e, 1].tolist() for e in range(4)]
    assert steps[0] == steps[1] == [0, 1, 3, 4, 5, 6, 7, 8, 9]  # main: the idle step 2 only
    assert steps[2] == [0, 1, 3, 4, 5, 6, 7]  # first close at 5, + 2 steps
    assert steps[3] == [0, 1, 3, 4, 5, 6, 7, 8, 9]
    assert len(DemoDataset(main, extra=(more,), extra_until_close=0)) == 9 * 3 + 5
    with pytest.raises(DatasetError, match="extra_until_close"):
        DemoDataset(main, extra=(more,), extra_until_close=-1)
