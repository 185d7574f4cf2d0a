"""Record golden upstream answers from the fake upstreams, then regenerate the goldens.

    python -m tests.golden.record                      # every recorded case
    python -m tests.golden.record anthropic/text chat/tool_call_stream

For each case: write `upstream_request.json` (the adapter's `build_request`), POST that body to
the fake that speaks the case's wire protocol, save the raw answer bytes as
`upstream_response.json` / `.sse`, then write `expected.json` / `expected.events.jsonl`.
Cases marked `handwritten.md` hold a transcribed provider answer and are never re-recorded.
The fakes mint random upstream ids, so a re-record changes them: review the diff.
"""

from __future__ import annotations

import json
import sys
import urllib.error
import urllib.request
from collections import defaultdict

from tests.fakes.google_oauth import service_account
from tests.fakes.process import FakeServer, start_fake
from tests.golden import harness
from tests.golden.harness import Case

FAKES = {
    "anthropic": "tests.fakes.anthropic_upstream",
    "gemini": "tests.fakes.gemini_upstream",
    "chat": "tests.fakes.chat_upstream",
    "responses": "tests.fakes.openai_upstream",
    "bedrock": "tests.fakes.bedrock_upstream",
    "vertex_gemini": "tests.fakes.vertex_upstream",
    "vertex_anthropic": "tests.fakes.vertex_upstream",
}
# Straight to 127.0.0.1 even when the environment sets an HTTP proxy.
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def fetch(case: Case, fake: FakeServer) -> bytes:
    """POST the golden upstream request to the fake; the raw answer bytes."""
    golden = json.loads((case.path / "upstream_request.json").read_text())
    url = golden["url"].replace(harness.ORIGIN, fake.root, 1)
    headers = {k: v.replace(harness.MASK, harness.TEST_KEY) for k, v in golden["headers"].items()}
    if case.api.startswith("vertex_"):  # the token comes per call, not in the golden
        headers["authorization"] = f"Bearer {google_token(fake)}"
    body = json.dumps(golden["body"]).encode()
    if case.api == "bedrock":
        headers = sign_for_fake(golden["method"], url, headers, body)
    request = urllib.request.Request(url, data=body, method=golden["method"], headers=headers)
    try:
        with _OPENER.open(request, timeout=30) as response:
            return response.read()
    except urllib.error.HTTPError as error:
        detail = error.read().decode(errors="replace")
        raise SystemExit(f"{case.id}: the fake answered {error.code}: {detail}") from None


def sign_for_fake(method: str, url: str, headers: dict[str, str], body: bytes) -> dict[str, str]:
    """SigV4 headers made with the fake Bedrock's test credentials (it checks every signature)."""
    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    from tests.fakes.bedrock_upstream import ACCESS_KEY, SECRET_KEY

    aws = AWSRequest(method=method, url=url, data=body, headers=headers)
    SigV4Auth(Credentials(ACCESS_KEY, SECRET_KEY), "bedrock", "us-east-1").add_auth(aws)
    return dict(aws.headers.items())


def google_token(fake: FakeServer) -> str:
    from google.auth.transport.requests import Request
    from google.oauth2 import service_account as google_sa

    info = service_account(fake)
    creds = google_sa.Credentials.from_service_account_info(
        info, scopes=["https://www.googleapis.com/auth/cloud-platform"]
    )
    creds.refresh(Request())
    return str(creds.token)


def record(case: Case, fake: FakeServer) -> None:
    fake.reset()
    harness.write_upstream_request(case)
    if script := case.fake_script:
        fake.enqueue(script)
    case.upstream_response_path.write_bytes(fetch(case, fake))
    harness.write_expected(case)
    print(f"recorded {case.id}")


def main(argv: list[str]) -> None:
    cases = harness.select(argv) if argv else [c for c in harness.all_cases() if not c.handwritten]
    if refused := [c.id for c in cases if c.handwritten]:
        raise SystemExit(f"hand-written, not recorded: {', '.join(refused)} (UPDATE_GOLDEN=1 pytest refreshes them)")
    by_api: dict[str, list[Case]] = defaultdict(list)
    for case in cases:
        by_api[case.api].append(case)
    for api, group in by_api.items():
        with start_fake(FAKES[api]) as fake:
            for case in group:
                record(case, fake)


if __name__ == "__main__":
    main(sys.argv[1:])
