"""OpenVLA (Prismatic) implemented in this package: load HF OpenVLA checkpoints without remote code, build
random-init presets (``openvla-7b``, ``tiny``), predict, score and fine-tune actions.

Modules (import them directly; importing this package loads nothing heavy):

* ``config``          OpenVLAConfig: the fields of an HF OpenVLA ``config.json``
* ``presets``         the preset registry (``get_preset``)
* ``action_tokenizer`` 256-bin action tokens, q01/q99 de-normalisation, ``unnorm_key`` checks (numpy)
* ``tokenizer``       prompt format, checkpoint tokenizer reader, offline Llama-style tokenizer builder
* ``processor``       image preprocessing (resize, per-backbone normalisation, channel stack)
* ``vision``          timm ViT featurizers with OpenVLA's parameter names, and a small CNN alternative
* ``modeling``        the network (``OpenVLAForActionPrediction``), ``ValueHead`` and the ``OpenVLA`` bundle
                      (``predict_action``)
* ``checkpoint``      HF folder loader / writer, explicit key map, ``init_checkpoint``
* ``lora``            peft LoRA adapters on the whole network
* ``commands``        ``vgb model init`` (``ModelInit`` / ``model_init``)
"""
