"""The monitor database's revisions (core/storage/migrations: `maillage db upgrade --service monitor`)."""
