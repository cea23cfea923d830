from setuptools import find_packages, setup

setup(
    name="dpt-clip",
    version="0.1.0",
    description="Dual Modality Prompt Tuning (DPT, CAVPT) and CoOp/VPT/VLP baselines for CLIP",
    packages=find_packages(include=["dpt", "dpt.*"]),
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
    ],
    extras_require={"test": ["pytest"]},
    entry_points={
        "console_scripts": [
            "dpt-train=dpt.train:main",
        ]
    },
)
