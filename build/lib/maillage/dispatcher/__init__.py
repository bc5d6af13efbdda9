"""The on-call dispatcher: safety alerts reach a person live, are acknowledged, and escalate."""
