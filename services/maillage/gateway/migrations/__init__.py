"""The gateway database's revisions (core/storage/migrations: `maillage db upgrade --service gateway`)."""
