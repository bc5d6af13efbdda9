"""The default network (the demo Pôle) and the default disclosure policy, shipped with the package."""
