"""Local streaming stack without Docker: a Kafka broker, a Flink cluster and Redis on 127.0.0.1.

``seqrec stack up`` fetches the JVM parts from Maven Central into a cache,
starts each server with its logs and PID in one state directory, and waits
until each one is healthy. ``seqrec stack down`` stops exactly what ``up``
started. Production deployments use real clusters instead (see ``docker/``).
"""
