"""Where the tests, the bench and the demo get their Kafka broker, PostgreSQL, topics and databases.

``services`` chooses the path (configured, else testcontainers, else embedded), ``topics``
creates and deletes topics, ``databases`` creates and drops throw-away databases.
"""
