"""Webhooks: each inbox arrival (or an unanswered alert) POSTed, signed, to a checked destination."""
