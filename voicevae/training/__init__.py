"""Training: the two loops (the VAE and the fast vocoder) and what they share.

    state.py    run folder, checkpoints, resume, RNG, --max-minutes, logs, loss weights
    elbo.py     the VAE's objective as a module (named ELBO terms)
    vae.py      `voicevae train`
    vocoder.py  `voicevae train-vocoder`

Their run configs (TrainConfig, VocoderConfig) live in voicevae/config.py with
the model configs. Outside this package only the CLI imports it, and
vocoder/evaluate.py, which scores vocoders through the same VAE transform
(`vae_mel_transform`) that fine-tuning on VAE output uses.
"""
