"""pipestatus: data-pipeline run-status events from Kafka into one trustworthy record of every run."""

__version__ = "0.1.0"
