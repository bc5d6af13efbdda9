"""The dispatcher database's revisions (core/storage/migrations: `maillage db upgrade --service dispatcher`)."""
