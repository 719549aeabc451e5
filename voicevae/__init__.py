"""voicevae: voice cloning and resynthesis with a convolutional VAE on log-mels.

    import voicevae
    vc = voicevae.load()          # shipped default model + HiFi-GAN vocoder
    wav = vc.convert("in.wav", target="slt")

Stages, one module each: audio (I/O boundary) -> features (MelFrontend) ->
model (VAE: encoders, decoder) with distributions/losses (the ELBO toolkit)
-> vectors (speaker and attribute vectors) -> api (conversion) -> vocoder.
"""

__version__ = "0.1.0"

__all__ = ["load", "VoiceConverter", "__version__"]


def __getattr__(name: str):
    # Imported on first use so `voicevae --help` and light modules stay quick.
    if name in ("load", "VoiceConverter"):
        from . import api

        return getattr(api, name)
    raise AttributeError(f"module 'voicevae' has no attribute {name!r}")
