"""Ingestion: replay dataset files into Kafka as validated events."""
