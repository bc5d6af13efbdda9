"""People signed in on a page for a while without handling a token: on-call workers, operators."""
