"""The OpenAPI contract of the inference routes, and the gateway fuzzed against it."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, settings
from inference_support import Stack

schemathesis = pytest.importorskip("schemathesis")

def test_openapi_describes_the_inference_routes(stack: Stack) -> None:
    doc = httpx.get(stack.url + "/openapi.json").json()
    paths = doc["paths"]
    for path in ("/v1/chat/completions", "/v1/completions", "/v1/embeddings",
                 "/v1/predict/{model}", "/v1/models", "/v1/models/{model}",
                 "/v1/sessions/{session}"):
        assert path in paths
    assert "delete" in paths["/v1/sessions/{session}"]
    chat = paths["/v1/chat/completions"]["post"]
    assert chat["requestBody"]["content"]["application/json"]["schema"]["$ref"].endswith(
        "/ChatRequest")
    assert {"200", "400", "401", "403", "429", "502", "504"} <= set(chat["responses"])
    assert "text/event-stream" in chat["responses"]["200"]["content"]
    schemas = doc["components"]["schemas"]
    assert schemas["ChatRequest"]["additionalProperties"] is False
    assert {"model", "messages"} <= set(schemas["ChatRequest"]["required"])
    assert doc["components"]["securitySchemes"]["bearer"]["scheme"] == "bearer"


@pytest.fixture
def api_schema(stack: Stack) -> Any:
    return schemathesis.openapi.from_url(stack.url + "/openapi.json")


schema = schemathesis.pytest.from_fixture("api_schema").include(tag="inference")


@schema.parametrize()
@settings(max_examples=30, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                 HealthCheck.filter_too_much])
def test_no_server_errors_for_any_request(case: Any, stack: Stack) -> None:
    for principal in ("alice", "bob"):
        response = case.call(base_url=stack.url, headers=stack.headers(principal))
        assert response.status_code < 500, response.text
        if not response.headers.get("x-tsuba-correlation-id"):
            # Refused by the router before any route ran: a method or path it has no route for.
            assert response.status_code in (404, 405)
            continue
        if response.status_code >= 400:
            assert set(response.json()) == {"error"}
