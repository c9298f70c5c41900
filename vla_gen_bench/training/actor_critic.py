"""The RL baselines' trainable policy: OpenVLA with LoRA (the actor) and a value head (the critic), built from a
warm-up checkpoint (:func:`build_actor_critic`), scored with gradients at update time (:func:`score`), optimised
(:func:`make_optimizer`) and exported as an evaluable OpenVLA folder (:func:`export_policy`).
"""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path
from typing import Any

import numpy as np

from vla_gen_bench.training.rl_config import ModelConfig


class ActorCritic:
    """OpenVLA with LoRA (the actor: a distribution over 7 action tokens) and a value head.

    Shared critic (default, RL4VLA): the value head reads the actor's hidden state at the position that emits the
    first action token, so one forward pass gives both log-probs and the value. Separate critic: a second backbone
    copy with its own LoRA feeds the value head (the ablation). ``value_head`` is None for critic-free algorithms.
    """

    def __init__(self, vla, value_head=None, critic_vla=None, continued_adapter: bool = False) -> None:
        self.vla = vla
        self.value_head = value_head
        self.critic_vla = critic_vla
        self.continued_adapter = continued_adapter

    @property
    def network(self):
        return self.vla.network

    def actor_parameters(self) -> list:
        ps = [p for p in self.vla.model.parameters() if p.requires_grad]
        if self.critic_vla is not None:
            ps += [p for p in self.critic_vla.model.parameters() if p.requires_grad]
        return ps

    def value_parameters(self) -> list:
        return list(self.value_head.parameters()) if self.value_head is not None else []

    def values(self, inputs: dict, value_hidden=None, detach: bool = False):
        """``(b,)`` values of prompts ``inputs`` (from :meth:`OpenVLA.prepare`); pass the actor's ``value_hidden``
        when a forward pass already computed it (shared critic). ``detach``: train the head only (no gradient
        into the backbone)."""
        if self.value_head is None:
            raise ValueError("this actor-critic has no value head")
        net = self.network if self.critic_vla is None else self.critic_vla.network
        if value_hidden is None or self.critic_vla is not None:
            value_hidden = net(
                inputs["pixel_values"], inputs["input_ids"], inputs["attention_mask"], logits_to_keep=1
            )["hidden"][:, -1]
        return self.value_head(value_hidden.detach() if detach else value_hidden)

    def trainable_state(self) -> dict[str, Any]:
        """The tensors that change in training (LoRA, value head): what workers receive and checkpoints hold."""
        out = {
            "actor": {
                n: p.detach().cpu().clone() for n, p in self.vla.model.named_parameters() if p.requires_grad
            }
        }
        if self.value_head is not None:
            out["value_head"] = {k: v.detach().cpu().clone() for k, v in self.value_head.state_dict().items()}
        if self.critic_vla is not None:
            out["critic"] = {n: p.detach().cpu().clone()
                             for n, p in self.critic_vla.model.named_parameters() if p.requires_grad}  # fmt: skip
        return out

    def load_trainable_state(self, state: dict[str, Any]) -> None:
        import torch

        def put(model, tensors):
            params = dict(model.named_parameters())
            missing = [n for n, p in params.items() if p.requires_grad and n not in tensors]
            if missing:
                raise ValueError(
                    f"state lacks {len(missing)} trainable tensors (e.g. {missing[0]}): different LoRA setup?"
                )
            with torch.no_grad():
                for n, t in tensors.items():
                    params[n].copy_(t.to(params[n].device, params[n].dtype))

        put(self.vla.model, state["actor"])
        if self.value_head is not None:
            self.value_head.load_state_dict(state["value_head"])
        if self.critic_vla is not None:
            put(self.critic_vla.model, state["critic"])

    def reference(self):
        """Context manager: the actor with its LoRA switched off = the warm-up policy (LoRA starts at zero).

        Raises:
            ValueError: the adapter is the warm-up's own (``model.continue_adapter``): off, it is not the warm-up.
        """
        if self.continued_adapter:
            raise ValueError("model.continue_adapter = true: switching the continued warm-up adapter off gives the "
                             "model before the warm-up, not the warm-up; use fresh adapters (continue_adapter = "
                             "false) when a reference policy is needed")  # fmt: skip
        return self.vla.model.disable_adapter()


def update_mode(model) -> None:
    """``model.train()`` for an RL update, with batch-norm layers (the conv featurizer's ``batchnorm`` option) kept
    in evaluation mode: the update must score actions with the same function that sampled them in the rollouts
    (running statistics, not the minibatch's)."""
    from torch import nn

    model.train()
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.eval()


def resolve_key(norm_stats: dict, unnorm_key: str | None) -> str | None:
    """``unnorm_key`` or, when None, the checkpoint's only dataset key (ignoring ``random_init`` if another exists)."""
    if unnorm_key is not None:
        return unnorm_key
    keys = [k for k in norm_stats if k != "random_init"] or list(norm_stats)
    return keys[0] if len(keys) == 1 else None


def continue_lora(model, adapter_dir: Path):
    """``model`` (weights with the adapter already merged in) with that adapter re-attached, trainable, and its
    delta taken back out of the base weights: the same function, now with the warm-up's adapter to train on.

    Raises:
        FileNotFoundError: ``adapter_dir`` is not a LoRA adapter folder.
    """
    import torch

    from vla_gen_bench.models.lora import load_lora

    peft_model = load_lora(model, adapter_dir, merge=False, trainable=True)
    with torch.no_grad():
        for m in peft_model.modules():
            if hasattr(m, "get_delta_weight") and hasattr(m, "get_base_layer"):
                w = m.get_base_layer().weight
                for name in m.active_adapters:
                    w -= m.get_delta_weight(name).to(w.dtype)
    return peft_model


def load_value_head(head, path: Path) -> None:
    """Load a saved value head into ``head``.

    Raises:
        ValueError: the saved head has other layer shapes than ``model.value_widths`` builds.
    """
    from safetensors.torch import load_file

    saved = load_file(str(path), device=str(next(head.parameters()).device))
    own = head.state_dict()
    shapes = {k: tuple(v.shape) for k, v in saved.items()}
    if shapes != {k: tuple(v.shape) for k, v in own.items()}:
        raise ValueError(f"{path} does not fit this value head: saved layers {shapes} vs "
                         f"{ {k: tuple(v.shape) for k, v in own.items()} }; set model.value_widths to the saved "
                         "widths, or model.value_head_init = false for a fresh head")  # fmt: skip
    head.load_state_dict({k: v.to(own[k].dtype) for k, v in saved.items()})


def build_actor_critic(
    cfg: ModelConfig, with_value: bool = True, seed: int = 0, notes: bool = True
) -> ActorCritic:
    """Load ``cfg.init``, attach fresh LoRA adapters (zero delta: the policy starts as the warm-up) or continue
    the warm-up's own adapter (``cfg.continue_adapter``), and a value head (float32, seeded).

    Raises:
        ValueError: no ``init`` checkpoint.
        FileNotFoundError: ``continue_adapter`` with an ``init`` that has no ``adapter/`` folder.
    """
    import copy

    import torch

    from vla_gen_bench import recipes
    from vla_gen_bench.models.checkpoint import load_openvla
    from vla_gen_bench.models.lora import attach_lora
    from vla_gen_bench.models.modeling import ValueHead

    if cfg.init is None:
        raise ValueError(
            "model.init is required: the warm-up checkpoint folder (e.g. bundled:sft-tiny-v12 or runs/baselines/sft-tiny/dagger1/final)"
        )
    init = recipes.checkpoint(cfg.init)  # bundled:<name> -> the shipped folder; a path stays a path
    vla = load_openvla(init, device=cfg.device, dtype=cfg.dtype)
    key = resolve_key(vla.norm_stats, cfg.unnorm_key)
    vla.resolve_unnorm_key(key)  # fails early, listing the keys, when ambiguous or unknown
    execute = getattr(vla.config, "execute", 0)
    if execute not in (0, vla.chunk):
        if notes:  # rollout workers pass notes=False: the trainer has said it once
            print(f"note: {cfg.init} executes {execute} of its {vla.chunk}-action chunks (vgb.execute); RL "
                  f"trains and exports whole-chunk decisions (execute 0)", file=sys.stderr)  # fmt: skip
        # RL decides and scores whole chunks (rollouts.py): the exported policy must run what was trained
        vla.config = dataclasses.replace(vla.config, execute=0)
    base = vla.model
    critic = None
    if cfg.separate_critic and with_value:
        critic = copy.copy(vla)
        critic.model = attach_lora(
            copy.deepcopy(base), r=cfg.lora_r, alpha=cfg.lora_alpha, scope=cfg.lora_scope
        )
    adapter = init / "adapter"
    if cfg.continue_adapter and not (adapter / "adapter_config.json").is_file():
        raise FileNotFoundError(f"model.continue_adapter = true needs the warm-up's LoRA adapter at {adapter}; "
                                f"{cfg.init} has none (a full fine-tune or a merged-only checkpoint): set "
                                "model.continue_adapter = false")  # fmt: skip
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        if cfg.continue_adapter:
            vla.model = continue_lora(base, adapter)
        else:
            vla.model = attach_lora(base, r=cfg.lora_r, alpha=cfg.lora_alpha, scope=cfg.lora_scope)
        head = ValueHead(vla.network.language_model.config.hidden_size, tuple(cfg.value_widths))
    head = head.to(vla.device) if with_value else None
    saved_head = init / "value_head.safetensors"
    if head is not None and cfg.value_head_init and saved_head.is_file():
        load_value_head(head, saved_head)
    ac = ActorCritic(vla, head, critic, continued_adapter=cfg.continue_adapter)
    ac.unnorm_key = key
    ac.vla.model.eval()  # no dropout (LoRA dropout is 0); rollouts and updates see the same function
    return ac


def score(ac: ActorCritic, images: np.ndarray, instructions: list[str], tokens: np.ndarray, temperature: float,
          with_values: bool = True, detach_values: bool = False):  # fmt: skip
    """Teacher-forced, differentiable log-probs ``(m, 7)``, entropies ``(m, 7)`` and values ``(m,)`` of recorded
    actions (the update-time twin of :meth:`RolloutPolicy.act_batch`)."""
    import torch

    inputs = ac.vla.prepare(images, instructions)
    out = ac.network.score_actions(inputs["pixel_values"], inputs["input_ids"], inputs["attention_mask"],
                                   torch.as_tensor(tokens), temperature=temperature)  # fmt: skip
    use = with_values and ac.value_head is not None
    values = ac.values(inputs, out.value_hidden, detach_values) if use else None
    return out.log_probs, out.entropy, values


def make_optimizer(ac: ActorCritic, lr: float, value_lr: float | None = None, weight_decay: float = 0.0):
    """AdamW (0.9, 0.999) with one group for the LoRA tensors and one for the value head (own learning rate);
    ``weight_decay`` on both (RL4VLA's two AdamW optimisers use torch's default, 0.01)."""
    import torch

    groups = [{"params": ac.actor_parameters(), "lr": lr, "name": "lora"}]
    if ac.value_head is not None:
        groups.append(
            {
                "params": ac.value_parameters(),
                "lr": value_lr if value_lr is not None else lr,
                "name": "value_head",
            }
        )
    return torch.optim.AdamW(groups, betas=(0.9, 0.999), weight_decay=weight_decay)


def export_policy(ac: ActorCritic, out_dir: Path) -> Path:
    """Write the current policy as an HF OpenVLA folder (LoRA merged; evaluable as ``openvla:<dir>``), with the
    value head next to it (``value_head.safetensors``)."""
    from safetensors.torch import save_file

    from vla_gen_bench.models.checkpoint import save_checkpoint

    out = save_checkpoint(ac.vla, out_dir)
    if ac.value_head is not None:
        save_file({k: v.detach().cpu().contiguous() for k, v in ac.value_head.state_dict().items()},
                  str(Path(out) / "value_head.safetensors"))  # fmt: skip
    return Path(out)
