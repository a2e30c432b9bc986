"""Calls Portcullis from Python with grpcio: a Check and a FilterRows on the patient-portal
example. Stubs are generated from proto/ at run time (grpcio-tools), so nothing generated
is kept in the repository. Exit code 0 when every answer is what the example's policy says.

    python3 check.py --server 127.0.0.1:50051 [--token TOKEN]
"""

import argparse
import pathlib
import sys
import tempfile
import time

from grpc_tools import protoc


def stubs(out: pathlib.Path):
    """Generates the portcullis.v1 modules into `out` and imports them."""
    root = pathlib.Path(__file__).resolve().parents[3] / "proto"
    protos = sorted(str(p.relative_to(root)) for p in (root / "portcullis" / "v1").glob("*.proto"))
    code = protoc.main(["protoc", f"-I{root}", f"--python_out={out}", f"--grpc_python_out={out}", *protos])
    if code != 0:
        sys.exit(f"protoc failed ({code}) on {protos}")
    sys.path.insert(0, str(out))
    from portcullis.v1 import authorization_pb2, authorization_pb2_grpc  # noqa: E402

    return authorization_pb2, authorization_pb2_grpc


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--server", default="127.0.0.1:50051")
    parser.add_argument("--token")
    args = parser.parse_args()

    import grpc

    with tempfile.TemporaryDirectory() as out:
        pb, rpc = stubs(pathlib.Path(out))
        stub = rpc.AuthorizationServiceStub(grpc.insecure_channel(args.server))
        metadata = [("authorization", f"Bearer {args.token}")] if args.token else []
        now = int(time.time())
        session = pb.Session(authenticated_at=now - 60, last_activity=now, factors=["password"])

        def read(principal, record, tenant, patient):
            request = pb.CheckRequest(
                principal=principal,
                action="read",
                resource=pb.Resource(type="medical_record", id=record, tenant=tenant,
                                     attributes={"patient_id": patient}),
                session=session,
            )
            return stub.Check(request, metadata=metadata, timeout=5).decision

        own = read("pat-ann", "r-1", "clinic-north", "pat-ann")
        other = read("pat-ann", "r-2", "clinic-south", "pat-bob")
        print(f"pat-ann reads her record r-1: {pb.Effect.Name(own.effect)} {own.reason} ({own.requirement}) by {own.rule}")
        print(f"pat-ann reads pat-bob's record r-2: {pb.Effect.Name(other.effect)} {other.reason} ({other.requirement})")

        rows = stub.FilterRows(
            pb.FilterRowsRequest(principal="pat-ann", action="read", resource_type="medical_record", session=session),
            metadata=metadata,
            timeout=5,
        )
        params = [p.text if p.HasField("text") else list(p.text_array.values) for p in rows.sql_params]
        print(f"pat-ann's rows: WHERE {rows.sql} with {params}")

        ok = (
            own.effect == pb.EFFECT_ALLOW and own.reason == "granted"
            and other.effect == pb.EFFECT_DENY and other.reason == "no_matching_grant"
            and rows.sql == '(("patient_id" = $1))' and params == ["pat-ann"]
        )
        print("as the policy says" if ok else "UNEXPECTED ANSWERS")
        return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
