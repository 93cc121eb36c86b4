"""Schemathesis against ``/openapi.json``, in process (ASGI, no network), with real tokens.

Every operation gets positive and negative examples (bounded, derandomized), once with
generated ids and once with ids of objects the caller owns, so that success answers are
checked too. Checks: no 5xx, answers conform to the declared schema, declared content type,
declared status code. The one exclusion, with its evidence, is ``EXCLUDED_CHECKS``.

Positive data must also be accepted (:func:`positive_refusal`): a request the schema calls
valid may still be refused for what the schema cannot know (a referral type missing from
the catalogue, a person or partner the hub does not have, a date in the future: a 422 naming
that body field; an id that is not the caller's: 404; the state: 409), but never by the
request's shape: no 400, 413 or 415, no 422 of request validation (its ``errors`` list), no
422 naming a parameter (the inbox cursor, Idempotency-Key). The one parameter exempt is the
cursor of ``GET /v1/referrals``: it is a keyset position the hub issued, which, like an id,
no pattern can tell from a forged one. ``/oauth/token`` is left out of this check: its
generated requests carry no client authentication (a signed client assertion is nothing a
generator makes), so RFC 6749's 400 and 401 are its right answers to them.

schemathesis' own pytest integration (``schema.parametrize`` with ``from_fixture``) needs
a schema at import time or breaks on pytest 9's node ids, and our app needs a database from
a fixture; so the test drives ``APIOperation.as_strategy`` with Hypothesis itself.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from hub.api.throttle import TOKEN_PATH
from tests.hubtest import api_client, make_hub
from tests.security.support import NO_RATE_LIMITS, World, seed_world

MAX_EXAMPLES = 25
CHECKS = [
    not_a_server_error,
    response_schema_conformance,
    content_type_conformance,
    status_code_conformance,
]
#: operation label -> (checks left out, why). Empty: every check runs on every operation.
EXCLUDED_CHECKS: dict[str, tuple[list[Any], str]] = {}
SETTINGS = settings(
    max_examples=MAX_EXAMPLES,
    derandomize=True,
    deadline=None,
    database=None,
    phases=[Phase.explicit, Phase.generate, Phase.shrink],
    suppress_health_check=list(HealthCheck),
)


def _owned_ids(world: World) -> dict[str, str]:
    """Path parameters naming objects of ude (the caller), so success answers get checked."""
    ref = world.referrals[0]  # ude -> amt
    return {
        "referral_id": ref.id,
        "person_id": ref.person,
        "consent_id": next(c for c, (p, _) in world.consents.items() if p == ref.person),
        "event_id": next(e for e, owner in world.inbox.items() if owner == "ude"),
        "kind": "university",
    }


#: (operation label, parameter) -> why a 422 naming it is not a disagreement with the schema.
OPAQUE_PARAMETERS = {("GET /v1/referrals", "cursor"): "a keyset position only the hub issues"}


def positive_refusal(operation: Any, response: Any) -> str | None:
    """Why a refusal of a schema-valid request shows the schema and the code disagree, or None."""
    status = response.status_code
    if operation.path == TOKEN_PATH:
        return None
    if status in (400, 413, 415):
        return f"{operation.label}: schema-valid request refused with {status}: {response.text}"
    if status != 422:
        return None
    problem = response.json()
    field = problem.get("field")
    parameters = {p.name for p in operation.iter_parameters()}
    if "errors" in problem or (
        field in parameters and (operation.label, field) not in OPAQUE_PARAMETERS
    ):
        return f"{operation.label}: schema-valid request refused with 422: {response.text}"
    return None


def fuzz(operation: Any, headers: dict[str, str], **strategy: Any) -> tuple[int, str | None]:
    """Run one operation's examples; (examples run, the first failure Hypothesis found)."""
    excluded = EXCLUDED_CHECKS.get(operation.label, ([], ""))[0]
    checks = [c for c in CHECKS if c not in excluded]
    runs = 0

    @given(case=operation.as_strategy(**strategy))
    @SETTINGS
    def run(case: Any) -> None:
        nonlocal runs
        runs += 1
        response = case.call_and_validate(headers=headers, checks=checks)
        if strategy.get("generation_mode") == GenerationMode.POSITIVE:
            refusal = positive_refusal(operation, response)
            assert refusal is None, refusal

    try:
        run()
    except Unsatisfiable:
        if strategy.get("generation_mode") != GenerationMode.NEGATIVE:
            raise
        return runs, None  # nothing in this operation can be made invalid
    except BaseException as exc:  # schemathesis reports failures as a BaseExceptionGroup
        if isinstance(exc, KeyboardInterrupt):
            raise
        return runs, f"{operation.label}: {describe(exc)}"
    return runs, None


def describe(exc: BaseException) -> str:
    """The exception and, for a group (schemathesis' failures, Hypothesis' "unreliable
    results"), every exception inside it: the group's own text names none of them."""
    if not isinstance(exc, BaseExceptionGroup):
        return f"{type(exc).__name__}: {exc}"
    inner = "\n".join(describe(e) for e in exc.exceptions)
    return f"{type(exc).__name__}: {exc}\n{inner}"


def test_schemathesis_finds_no_server_error_and_no_schema_mismatch(
    database_url: str, tmp_path: Path
) -> None:
    hub, partners = make_hub(database_url, tmp_path, **NO_RATE_LIMITS)
    try:
        with api_client(hub) as client:
            world = seed_world(client, partners, hub)
            headers = world.headers["ude"]
            owned = _owned_ids(world)
            schema = schemathesis.openapi.from_asgi("/openapi.json", client.app)
            failures, examples, operations = [], 0, 0
            for result in schema.get_all_operations():
                operation = result.ok()
                operations += 1
                params = {p.name for p in operation.path_parameters}
                variants: list[dict[str, Any]] = [
                    {"generation_mode": GenerationMode.POSITIVE},
                    {"generation_mode": GenerationMode.NEGATIVE},
                ]
                if params:
                    ids = {name: owned[name] for name in params}
                    variants.append(
                        {"generation_mode": GenerationMode.POSITIVE, "path_parameters": ids}
                    )
                for variant in variants:
                    runs, failure = fuzz(operation, headers, **variant)
                    examples += runs
                    if failure:
                        failures.append(failure)
    finally:
        hub.engine.dispose()
    assert operations >= 15
    assert examples >= operations * MAX_EXAMPLES
    assert failures == [], "\n\n".join(failures)


def test_the_token_endpoint_documents_its_form_and_its_errors(client: Any) -> None:
    operation = client.get("/openapi.json").json()["paths"]["/oauth/token"]["post"]
    assert "application/x-www-form-urlencoded" in operation.get("requestBody", {}).get(
        "content", {}
    )
    assert {"400", "401"} <= set(operation["responses"])


def test_a_failure_is_described_with_what_its_group_holds() -> None:
    group = BaseExceptionGroup(
        "unreliable", [ValueError("first call: 500"), ExceptionGroup("checks", [KeyError("x")])]
    )
    text = describe(group)
    assert "first call: 500" in text
    assert "KeyError: 'x'" in text
