"""The data plane: admission and limits, the predictor, batching, the backend, the model
manager and the store follower."""
