"""The HTTP API: routes (REST, the Open Inference Protocol over REST, the web console), their
dependencies, bodies, errors and middleware, and the hardened server protocol."""
