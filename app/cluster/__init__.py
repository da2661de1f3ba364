"""The Ray Serve adapter: the service spread over a cluster, made of the same pieces.

- ``Ingress`` replicas (CPU) run the FastAPI app of :mod:`app.main` (routes, limits, the error
  table, metrics, image decoding) over a backend that calls a model replica;
- ``Model`` replicas each run a :class:`~app.inference.backend.LocalBackend` (our batcher and
  an engine) on their device and follow the store's active pointer;
- one ``Coordinator`` keeps the retrain jobs (each a Ray task) and what every replica reports.

``app.cluster.app:build`` is the application for ``serve run``/``serve deploy`` (see
``deploy/ray/serve.yaml``); ``python -m app.cluster.local`` runs a cluster on this machine.
"""
