"""Training: the dataset, the weights, feature and activation caches, recipes,
cross-validation and publishing."""
