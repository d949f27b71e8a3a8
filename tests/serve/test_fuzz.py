"""The OpenAPI schema fuzzed with schemathesis against the live server: no 5xx, ever.

Cases are drawn from each operation's hypothesis strategy (valid and invalid inputs alike,
as schemathesis generates them) and sent to the uvicorn server on 127.0.0.1.
"""

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode

EXAMPLES = 40  # per operation; bounded so the suite stays fast


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE],
                         ids=["valid-inputs", "invalid-inputs"])
def test_no_input_causes_a_server_error(live, mode):
    schema = schemathesis.openapi.from_url(f"{live.url}/openapi.json")
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 8
    calls = []

    for operation in operations:
        strategy = operation.as_strategy(generation_mode=mode)

        @settings(max_examples=EXAMPLES, deadline=None, database=None,
                  suppress_health_check=list(HealthCheck))
        @given(data=st.data())
        def fuzz(data):
            case = data.draw(strategy)
            response = case.call(timeout=10)
            calls.append(response.status_code)
            assert response.status_code < 500, (
                f"{case.method} {case.formatted_path} {case.query} {case.body!r}: {response.text}")
            if response.status_code >= 400:
                assert "detail" in response.json()  # every refusal says what is wrong

        try:
            fuzz()
        except Unsatisfiable:  # no input to get wrong (GET /health): nothing to fuzz negatively
            assert mode is GenerationMode.NEGATIVE
    assert len(calls) >= len(operations) * 5
    if mode is GenerationMode.NEGATIVE:
        assert sum(400 <= code < 500 for code in calls) > len(calls) // 2  # mostly refused
