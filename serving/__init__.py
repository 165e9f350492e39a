"""The gRPC service: Recommend over Feast features, the Torch model and the River learner, and SendEvent into Kafka.

Start with :func:`serving.server.create_server`. :mod:`serving.recommender`
contains the scoring path and its fallbacks, and :mod:`serving.rules` the constraint layer.
This package imports ``seqrec`` and ``online_learning`` but never ``pipelines``,
so it ships in its own image.
"""

# Feast 0.67 sets PROMETHEUS_MULTIPROCESS_DIR when feast.metrics is imported. A
# prometheus_client imported after that stores every value in files shared by all
# registries of the process, so two servers in one process would add up their
# counts. Importing prometheus_client first keeps the values in memory.
import prometheus_client.values  # noqa: E402,F401
