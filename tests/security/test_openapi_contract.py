"""The HTTP API against its OpenAPI description, with schemathesis and a valid token.

Schemathesis generates requests for every operation of ``/openapi.json`` (valid ones,
and ones that break the schema) and checks each answer: never a 5xx, a status code and
a content type the description declares, a body that matches its schema. The
operations are walked here with Hypothesis directly (schemathesis's own pytest
integration does not load on this pytest).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import negative_data_rejection
from schemathesis.specs.openapi.checks import positive_data_acceptance

from hygie.app import create_app
from hygie.platform import Platform
from hygie.security.tokens import issue_service_token
from tests.security.territory import make_platform, seed


@pytest.fixture(scope="module")
def described(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Any, Platform]]:
    folder = tmp_path_factory.mktemp("contract")
    platform = make_platform(f"sqlite:///{folder / 'h.db'}", folder / "var")
    app = create_app(platform=platform)
    seed(platform)
    yield schemathesis.openapi.from_asgi("/openapi.json", app), platform
    platform.close()


#: FHIR searches ignore parameters they do not know under lenient handling (search.html
#: #errors), so a request the description calls invalid may rightly get a 200.
SEARCHES = {"GET /fhir/{type}", "POST /fhir/{type}/_search"}


def _operations() -> list[str]:
    from hygie.security.openapi import openapi_document

    paths = openapi_document("http://testserver")["paths"]
    return [f"{method.upper()} {path}" for path, item in paths.items()
            for method in item if method != "parameters"]


@pytest.mark.parametrize("label", _operations())
@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
def test_the_api_keeps_to_its_description(described: tuple[Any, Platform], label: str,
                                          mode: GenerationMode) -> None:
    api, platform = described
    token = issue_service_token(platform, subject="contract-tests",
                                scope="system/*.cruds openid")
    operation = api.find_operation_by_label(label)
    assert operation is not None, label

    excluded = [positive_data_acceptance]
    if label in SEARCHES:
        excluded.append(negative_data_rejection)

    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(max_examples=10, deadline=None, derandomize=True, database=None,
              suppress_health_check=list(HealthCheck))
    def check(case: Any) -> None:
        # A body valid for the description may still break the FHIR R4 structure rules,
        # which the description does not carry: the store answers 400 as it declares.
        case.call_and_validate(headers={"Authorization": f"Bearer {token}"},
                               excluded_checks=excluded)

    try:
        check()
    except Unsatisfiable:
        assert mode is GenerationMode.NEGATIVE  # nothing in it can be made invalid
        pytest.skip(f"{label} has no parameter or body to make invalid")
