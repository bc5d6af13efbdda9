"""The transactional outbox: rows written with the business change, published to Kafka by a relay."""
