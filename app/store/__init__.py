"""The versioned model store: versions and their metadata, crash-safe writes, who holds what."""
