"""Training: the two loops (the VAE and the fast vocoder) and what they share.

    state.py    run folder, checkpoints, resume, RNG, --max-minutes, logs, loss weights
    elbo.py     the VAE's objective as a module (named ELBO terms)
    vae.py      `voicevae train`
    vocoder.py  `voicevae train-vocoder`
    adapt.py    `voicevae adapt`: fine-tuning a trained VAE to one new voice

Their configs (TrainConfig, VocoderConfig, AdaptConfig) live in
voicevae/config.py with the model configs. Imports flow into this package:
it builds on the model, data, vocoder and audio modules, none of which
imports it. Outside it, only the CLI, `VoiceConverter.adapt` (a lazy import
in the one method that trains) and the cloning protocol call into it.
"""
