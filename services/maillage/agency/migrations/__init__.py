"""The agency database's revisions (core/storage/migrations: `maillage db upgrade --service agency`)."""
