"""The tests' real S3-compatible store on 127.0.0.1 (SeaweedFS `weed mini`): the server of
benchmarks/loopback.py, which benchmarks/faults.py starts too."""

from benchmarks.loopback import ACCESS_KEY, BUCKET, SECRET_KEY, S3Server, weed_binary
from benchmarks.loopback import start_s3 as start

__all__ = ["ACCESS_KEY", "BUCKET", "SECRET_KEY", "S3Server", "start", "weed_binary"]
