"""The tamper-evident audit chain's table and its queries: one record per disclosure decision, hash-linked."""
