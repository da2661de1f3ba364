"""The Open Inference Protocol (KServe V2): its types, the data plane, the REST and gRPC codecs,
the gRPC server and its generated stubs."""
