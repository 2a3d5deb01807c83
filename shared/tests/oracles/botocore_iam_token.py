"""The ElastiCache IAM authentication token as AWS's own Python SDK makes it.

The oracle of shared/tests/iam_token.rs: reads one request as JSON on stdin
({"user", "cache_name", "region", "serverless", "access_key", "secret_key",
"session_token", "epoch_seconds"}) and prints the token botocore signs for it
at that instant: a presigned GET of <cache_name>/?Action=connect&User=<user>
(service elasticache, 900 s), without the URL's scheme.
"""

import datetime
import json
import sys
from urllib.parse import ParseResult, urlencode, urlunparse

import botocore.auth
import botocore.session
from botocore.credentials import Credentials
from botocore.model import ServiceId
from botocore.signers import RequestSigner


def main() -> None:
    request = json.load(sys.stdin)
    instant = datetime.datetime.fromtimestamp(request["epoch_seconds"], datetime.timezone.utc)
    # SigV4Auth reads the time through this function; fix it to the request's.
    botocore.auth.get_current_datetime = lambda remove_tzinfo=True: instant.replace(tzinfo=None)
    credentials = Credentials(
        request["access_key"], request["secret_key"], request.get("session_token")
    )
    session = botocore.session.get_session()
    signer = RequestSigner(
        ServiceId("elasticache"),
        request["region"],
        "elasticache",
        "v4",
        credentials,
        session.get_component("event_emitter"),
    )
    params = {"Action": "connect", "User": request["user"]}
    if request["serverless"]:
        params["ResourceType"] = "ServerlessCache"
    url = urlunparse(
        ParseResult(
            scheme="https",
            netloc=request["cache_name"],
            path="/",
            params="",
            query=urlencode(params),
            fragment="",
        )
    )
    signed = signer.generate_presigned_url(
        {"method": "GET", "url": url, "body": {}, "headers": {}, "context": {}},
        operation_name="connect",
        expires_in=900,
        region_name=request["region"],
    )
    print(signed.removeprefix("https://"))


if __name__ == "__main__":
    main()
