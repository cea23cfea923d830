from setuptools import find_packages, setup

setup(
    name="dpt-clip",
    version="0.1.0",
    description="Dual Modality Prompt Tuning (DPT, CAVPT) and CoOp/VPT/VLP baselines for CLIP",
    packages=find_packages(include=["dpt", "dpt.*"]),
    package_data={"dpt.reporting": ["paper_results.csv"]},
    python_requires=">=3.9",
    install_requires=[
        "torch>=1.13",
        "torchvision>=0.14",
        "clip-anytorch>=2.5",
        "yacs>=0.1.8",
        "PyYAML",
        "tabulate",
        "tqdm",
        "Pillow",
        "tensorboard",
        "numpy",
        "matplotlib",
        "scikit-learn>=1.0",
        "safetensors>=0.3",
    ],
    extras_require={
        "test": ["pytest", "open_clip_torch>=3.0", "submitit>=1.5"],
        "open_clip": ["open_clip_torch>=3.0"],  # MODEL.BACKBONE.NAME open_clip:ARCH:PRETRAINED
        "cluster": ["submitit>=1.5"],  # LAUNCHER=slurm / submitit-local in scripts/reproduce.sh
    },
    entry_points={
        "console_scripts": [
            "dpt-train=dpt.train:main",
            "dpt-results=dpt.tools.results:main",
            "dpt-plot=dpt.tools.plots:main",
            "dpt-attention=dpt.tools.attention:main",
            "dpt-check-data=dpt.tools.check_data:main",
            "dpt-cache=dpt.tools.cache:main",
            "dpt-demo=dpt.tools.demo:main",
            "dpt-convert=dpt.tools.convert:main",
            "dpt-interpret=dpt.tools.interpret:main",
            "dpt-export=dpt.tools.export:main",
            "dpt-predict=dpt.tools.predict:main",
        ]
    },
)
