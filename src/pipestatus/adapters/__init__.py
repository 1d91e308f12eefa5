"""The I/O shell: Kafka, PostgreSQL, HTTP and metrics live here and nowhere else."""
