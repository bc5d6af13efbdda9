"""The local development broker: the Maven pom that fetches Apache Kafka's jars, and its logging."""
