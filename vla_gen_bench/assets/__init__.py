"""Assets: the AssetStore (packs with manifests and hashes) and the built-in procedural source."""
