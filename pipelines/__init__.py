"""Stream and batch jobs: Flink feature jobs, Kafka-to-store writers and the Beam training pipeline."""
