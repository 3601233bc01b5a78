"""``ragline.proto`` and the Python modules generated from it (``scripts/gen_grpc.sh``).

A client in Python::

    import grpc
    from rag.serve.proto import ragline_pb2 as pb, ragline_pb2_grpc as pb_grpc

    with grpc.insecure_channel("127.0.0.1:50051") as channel:
        stub = pb_grpc.RaglineStub(channel)
        reply = stub.Search(pb.SearchRequest(query="What is BM25?", k=3),
                            metadata=[("authorization", "Bearer <key>")])
"""
