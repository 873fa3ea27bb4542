"""Schemathesis against the app's own OpenAPI document, in-process (ADR 0032).

Every operation is called with inputs generated from the document: its explicit examples,
boundary values of every constraint (the coverage phase, valid and invalid), random valid
and invalid inputs (fuzzing) and chains of calls linked by their parameters (stateful).
The checks: no 5xx, every response matches its documented schema, content type and status
code, and input the document calls invalid is refused. Deterministic (derandomized Hypothesis,
a fixed seed, no example database or cache), bounded (`max_examples` per operation), over a
fixed clock, with a customer and a receivable seeded so that operations on them get past 404.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
import schemathesis
from schemathesis import GenerationMode
from hypothesis import strategies as st
from schemathesis.config import CacheConfig, HealthCheck
from schemathesis.engine import events, from_schema

from ..conftest import make_services
from .conftest import CUSTOMER, Api, invoice

SEED = 20260302
CHECKS = [
    "not_a_server_error",
    "response_schema_conformance",
    "content_type_conformance",
    "status_code_conformance",
    "negative_data_rejection",
]
SEEDED = {"customer_id": CUSTOMER["customer_id"], "receivable_ref": "INV-2026-0001"}


@dataclass
class Report:
    failures: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    cases: dict[str, int] = field(default_factory=dict)
    operations: set[str] = field(default_factory=set)
    statuses: dict[int, int] = field(default_factory=dict)
    seconds: float = 0.0
    phase_seconds: dict[str, float] = field(default_factory=dict)

    def problems(self) -> str:
        return "\n\n".join([*self.errors, *self.failures])


def seed_resources(api: Api) -> None:
    assert api.as_("supervisor").post("/customers", json=CUSTOMER).status_code == 201
    assert api.as_("service").post("/receivables", json=invoice()).status_code == 201


def run_schemathesis(
    api: Api,
    who: str,
    *,
    max_examples: int,
    phases: list[str],
    methods: tuple[str, ...] | None = None,
    coverage_modes: list[GenerationMode] | None = None,
) -> Report:
    """One schemathesis run over the app as `who`; every failed check and engine error reported."""
    # An explicit configuration: no schemathesis.toml is looked for, no failure cache kept between runs.
    config = schemathesis.Config(seed=SEED, suppress_health_check=[HealthCheck.all], cache=CacheConfig(enabled=False))
    schema = schemathesis.openapi.from_asgi("/openapi.json", api.client.app, config=config)
    if methods is not None:
        schema = schema.include(method=list(methods))
    schema.config.update(headers=api.headers(who))
    schema.config.generation.update(max_examples=max_examples, deterministic=True)
    schema.config.phases.update(phases=phases)
    schema.config.phases.coverage.unexpected_methods = set()  # 405 for methods no route has: FastAPI's, not ours
    if coverage_modes is not None:
        schema.config.phases.coverage.generation.update(modes=coverage_modes)
    schema.config.checks.update(included_check_names=CHECKS)

    @schema.hook("flatmap_path_parameters")
    def _sometimes_the_seeded_resources(context: Any, path_parameters: dict[str, Any] | None) -> Any:
        if not path_parameters:
            return st.just(path_parameters)
        real = {k: SEEDED.get(k, v) for k, v in path_parameters.items()}
        return st.sampled_from([path_parameters, real])

    report = Report()
    started = phase_started = time.monotonic()
    for event in from_schema(schema).execute():
        if isinstance(event, events.PhaseStarted):
            phase_started = time.monotonic()
        elif isinstance(event, events.PhaseFinished):
            name = str(event.phase.name.value)
            report.phase_seconds[name] = round(time.monotonic() - phase_started, 1)
        elif isinstance(event, (events.ScenarioFinished, events.FuzzScenarioFinished)):
            _record(report, event)
        elif isinstance(event, events.NonFatalError):
            report.errors.append(f"{event.label}: {event.info.title}: {event.info.message}")
        elif isinstance(event, events.FatalError):
            report.errors.append(f"fatal: {event.exception!r}")
        elif isinstance(event, events.EngineFinished):
            report.failures.extend(f"after the run: {failure.title}" for failure in event.failures)
    report.seconds = time.monotonic() - started
    return report


def _record(report: Report, event: Any) -> None:
    recorder = event.recorder
    phase = str(getattr(event, "phase", "fuzzing"))
    report.cases[phase] = report.cases.get(phase, 0) + len(recorder.cases)
    for interaction in recorder.interactions.values():
        if interaction.response is not None:
            status = interaction.response.status_code
            report.statuses[status] = report.statuses.get(status, 0) + 1
    for case_id, node in recorder.cases.items():
        report.operations.add(node.value.operation.label)
        for check in recorder.checks.get(case_id, []):
            if check.failure_info is None:
                continue
            interaction = recorder.interactions.get(case_id)
            body = interaction.response.content[:500] if interaction and interaction.response else b""
            failure = check.failure_info.failure
            report.failures.append(
                f"[{phase}] {recorder.label}: {check.name}: {failure.title}\n"
                f"  {failure.message}\n  {check.failure_info.code_sample}\n  -> {body!r}"
            )


@pytest.fixture
def seeded_api(api: Api) -> Api:
    seed_resources(api)
    return api


def test_the_api_as_a_supervisor_answers_every_generated_request_as_its_document_says(seeded_api, database_url):
    if database_url.startswith("sqlite"):
        report = run_schemathesis(
            seeded_api, "supervisor", max_examples=3, phases=["examples", "coverage", "fuzzing", "stateful"]
        )
    else:  # a smaller pass: what PostgreSQL stores differently (lengths at their bounds, text without NUL)
        report = run_schemathesis(
            seeded_api,
            "supervisor",
            max_examples=2,
            phases=["examples", "coverage", "fuzzing"],
            coverage_modes=[GenerationMode.POSITIVE],
        )
    print(f"schemathesis as supervisor: {report.seconds:.1f} s {report.phase_seconds}, cases {report.cases}, statuses {sorted(report.statuses.items())}")
    assert not report.problems(), report.problems()
    documented = set(_operations(seeded_api))
    assert report.operations == documented, documented ^ report.operations
    assert report.cases.get("fuzzing", 0) >= len(documented), report.cases
    assert report.statuses.get(200, 0) + report.statuses.get(201, 0) > 0, "nothing got past validation"


@pytest.fixture
def seeded_sqlite_api(sqlite_url: str, clock: Any) -> Iterator[Api]:
    services = make_services(sqlite_url, clock)
    api = Api(services)
    seed_resources(api)
    yield api
    services.close()


def test_the_api_as_an_auditor_answers_every_generated_read_as_its_document_says(seeded_sqlite_api):
    """A read-only role, once (on SQLite): what it is shown (masked contacts) must match the document too."""
    report = run_schemathesis(seeded_sqlite_api, "auditor", max_examples=5, phases=["examples", "fuzzing"], methods=("GET",))
    print(f"schemathesis as auditor: {report.seconds:.1f} s, cases {report.cases}, statuses {sorted(report.statuses.items())}")
    assert not report.problems(), report.problems()
    reads = {op for op in _operations(seeded_sqlite_api) if op.startswith("GET ")}
    assert report.operations == reads, reads ^ report.operations


def _operations(api: Api) -> list[str]:
    document = api.client.get("/openapi.json").json()
    return [f"{method.upper()} {path}" for path, item in document["paths"].items() for method in item]
