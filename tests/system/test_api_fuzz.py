"""Schemathesis against the collector's own OpenAPI document, on Postgres, with a valid project key.

Every operation gets generated requests (valid and invalid bodies, parameters and headers); every answer must
be a non-5xx that matches the schema the app publishes for that status code. A few thousand cases in all
(`CASES_PER_OPERATION` per operation, fewer where a schema allows fewer distinct inputs).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error, response_schema_conformance
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from monitor.api.app import create_app
from monitor.projects.service import SCOPES, create_key
from monitor.settings import Settings
from tests.support.factories import event_dict, unique_slug
from tests.support.hostile import HOSTILE_DATETIME

pytestmark = [pytest.mark.postgres, pytest.mark.slow]

CASES_PER_OPERATION = 120
CALLS: Counter[str] = Counter()
# Times at the edges of `datetime` with offsets up to +-23:59 (issue #18: they reached a 500 by overflowing on the
# way to UTC), mixed with ordinary ones, wherever the schema says `date-time`.
schemathesis.openapi.format("date-time", HOSTILE_DATETIME)


@pytest.fixture(scope="module")
def fuzz_target(pg_url: str, pg_engine: Engine, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    with Session(pg_engine) as s:
        key = create_key(s, unique_slug("fuzz"), scopes=SCOPES)  # every operation must get past the scope check
        s.commit()
    settings_ = Settings(database_url=pg_url, data_dir=tmp_path_factory.mktemp("fuzz"),
                         rate_limit_per_second=0, rate_limit_events_per_second=0)
    app = create_app(settings_, engine=pg_engine)
    with pytest.MonkeyPatch.context() as mp:
        # A valid POST /v1/retrain is accepted and recorded; running LoRA training on fuzzed data is not what
        # this test is about (tests/retrain covers it), so the job is not started.
        mp.setattr("retrain.api.submit", lambda job_id, **_: CALLS.update(["retrain-dispatch"]))
        with TestClient(app, raise_server_exceptions=False) as client:
            yield {"app": app, "client": client, "key": key.key}
    print(f"\nschemathesis: {sum(v for k, v in CALLS.items() if k != 'retrain-dispatch')} cases over "
          f"{len(CALLS) - ('retrain-dispatch' in CALLS)} operations")


@pytest.fixture(scope="module")
def api_schema(fuzz_target: dict[str, Any]) -> Any:
    return schemathesis.openapi.from_asgi("/openapi.json", fuzz_target["app"])


schema = schemathesis.pytest.from_fixture("api_schema")


@schema.parametrize()
@settings(max_examples=CASES_PER_OPERATION, deadline=None, suppress_health_check=list(HealthCheck), database=None)
def test_no_server_errors_and_responses_match_the_schema(case: Any, fuzz_target: dict[str, Any]) -> None:
    CALLS[case.operation.label] += 1
    # Sent through Starlette's TestClient (httpx): schemathesis's own ASGI transport is built on `requests`,
    # which the installed urllib3 fork does not support. The checks are schemathesis's.
    kwargs = case.as_transport_kwargs(base_url="http://testserver",
                                      headers={"Authorization": f"Bearer {fuzz_target['key']}"})
    if "data" in kwargs:
        kwargs["content"] = kwargs.pop("data")
    response = fuzz_target["client"].request(**kwargs)
    case.validate_response(response, checks=[not_a_server_error, response_schema_conformance])


def test_the_key_is_valid(fuzz_target: dict[str, Any]) -> None:
    # Guards the fuzz run's premise: with this key, authenticated operations get past authentication and the
    # scope check (a 403 is a documented answer, so a key lacking a scope would pass the fuzzing unnoticed).
    auth = {"Authorization": f"Bearer {fuzz_target['key']}"}
    client = fuzz_target["client"]
    assert client.get("/v1/alert-rules", headers=auth).status_code == 200  # read
    assert client.post("/v1/events", json={"events": [event_dict()]}, headers=auth).status_code == 200  # ingest
    assert client.post("/v1/alert-rules/import?dry_run=true", content="rules: []\n",  # admin
                       headers={**auth, "Content-Type": "application/yaml"}).status_code == 200
