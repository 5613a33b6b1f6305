"""jaxnotes: note transcription from constant-Q spectrograms, in JAX."""

import setuptools

# Pinned to the versions the test suite runs with (see README, "Versions").
INSTALL_REQUIRES = [
    "jax==0.10.2",
    "jaxlib==0.10.2",
    "flax==0.12.8",
    "optax==0.2.8",
    "orbax-checkpoint==0.12.8",
    "ml-collections==1.1.0",
    "absl-py==2.5.1",
    "tensorflow-datasets==4.9.10",
    "grain==0.2.18",
    "array-record==0.8.6",
    "librosa==0.11.0",
    "soundfile==0.14.0",
    "soxr==1.1.0",
    "audioread==3.1.0",
    "mir-eval==0.8.2",
    "pretty-midi==0.2.11.post0",
    "mido==1.3.3",
    "music21==10.5.1",
    "numpy==2.4.6",
    "scipy==1.17.1",
    "scikit-learn==1.9.1",
    "matplotlib==3.11.2",
    "tensorboardX==2.6.5",
    "tqdm==4.70.1",
]

setuptools.setup(
    name="jaxnotes",
    version="0.1.0",
    description="Note transcription from constant-Q spectrograms with JAX, trained on MusicNet.",
    long_description=open("README.md").read(),
    long_description_content_type="text/markdown",
    license="Apache-2.0",
    python_requires=">=3.11",
    packages=setuptools.find_packages(include=["jaxnotes", "jaxnotes.*", "configs"]),
    # The shipped pretrained model (weights.npz, config, thresholds, model card).
    package_data={"jaxnotes": ["pretrained_model/*"]},
    install_requires=INSTALL_REQUIRES,
    extras_require={
        "test": ["pytest==9.0.3", "ruff==0.17.6"],
        "dev": ["pytest==9.0.3", "ruff==0.17.6"],
        "live": ["sounddevice==0.5.6", "python-rtmidi==1.5.8"],
    },
    entry_points={
        "console_scripts": [
            "jaxnotes-transcribe=jaxnotes.transcribe.cli:run",
        ],
    },
)
