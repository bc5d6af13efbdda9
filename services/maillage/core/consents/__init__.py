"""Consents as the services keep them: the terms a `consent.granted` event states, in each one's own table."""
