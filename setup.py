"""Packaging of the streaming sequence recommender.

The pins below are a set that installs together on Python 3.11: PyFlink 2.2.x
is the newest Flink line with a released Kafka SQL connector (5.0.0-2.2), and
it caps Apache Beam at 2.61, which caps numpy below 2.2. ``constraints.txt``
pins every transitive dependency of that set; ``make install`` uses it.
Each component has an extra, so its image installs only what it needs.
"""

from setuptools import find_packages, setup

CORE = [
    "kafka-python==2.2.21",
    "numpy>=2.1,<2.2",
    "pandas==2.2.3",
    "pyarrow>=16.1,<16.2",
    "pyyaml>=6.0",
    "tqdm>=4.66",
]

EXTRAS = {
    "stream": ["apache-flink==2.2.1"],
    "features": ["feast==0.67.0", "redis>=5.0"],
    # matplotlib draws the prequential curve of benchmarks/online_learning.py. With
    # crc32c installed, kafka-python checks record CRCs in C instead of pure Python,
    # which took about 10 % of the learner's time under cProfile.
    "online": ["river==0.23.0", "prometheus-client>=0.20", "matplotlib>=3.9", "crc32c>=2.4"],
    "serve": [
        "grpcio==1.65.5",
        "grpcio-tools==1.65.5",
        "grpcio-health-checking==1.65.5",
        "grpcio-reflection==1.65.5",
        "protobuf>=5.29,<5.30",
        "prometheus-client>=0.20",
        # The server reads Feast (SQLite or Redis), scores with the TorchScript export of
        # the nightly model and with River snapshots of the online learner.
        "feast==0.67.0",
        "redis>=5.0",
        "river==0.23.0",
        "torch==2.13.0",
    ],
    # The PyPI wheel of torch for Linux brings the CUDA libraries too (about 4 GB
    # installed); it runs on the CPU when no GPU is present.
    "train": ["apache-beam==2.61.0", "torch==2.13.0"],
    "test": ["pytest>=8.0", "pytest-timeout>=2.3", "hypothesis>=6.100"],
}
EXTRAS["all"] = sorted({pin for name, pins in EXTRAS.items() if name != "test" for pin in pins})

setup(
    name="seqrec",
    version="0.1.0",
    description="Streaming sequence recommender: Kafka, Flink, Feast, River, PyTorch and gRPC",
    python_requires=">=3.10,<3.13",
    packages=find_packages(include=["seqrec*", "stack*", "ingest*", "cli*", "pipelines*", "online_learning*", "serving*", "demo*"]),
    install_requires=CORE,
    extras_require=EXTRAS,
    entry_points={"console_scripts": ["seqrec=cli.main:main"]},
)
