"""pipestatus: data-pipeline run-status events from Kafka, one trustworthy record per run."""

__version__ = "0.1.0"
