"""`maillage chaos`: the reliability campaign — faults injected into a running Pôle under load, and its figures."""
