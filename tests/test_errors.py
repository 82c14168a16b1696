"""The error tree: each class carries the exit code and the HTTP status it is answered with,
pickles with its fields (errors cross Ray actors), and a missing library reads the same
everywhere."""

from __future__ import annotations

import pickle
from pathlib import Path

import jsonschema
import pytest

from orchestrator import errors
from orchestrator.errors import (
    MAX_JSON_DEPTH,
    SURROGATE,
    ApiError,
    BudgetExceeded,
    CadreError,
    CatalogError,
    ConflictError,
    ContextLengthError,
    DatabaseUnavailable,
    DataError,
    EngineError,
    InputError,
    NotFoundError,
    OutputSchemaError,
    Problem,
    RunError,
    ToolTimeoutError,
    UserError,
    missing_dependency,
    person_name,
    schema_misfit,
    unfit_json,
)


@pytest.mark.parametrize(
    ("error", "exit_code", "status", "type_name"),
    [
        (NotFoundError("no run 'r'"), 2, 404, "not_found"),
        (InputError("empty text"), 2, 422, "invalid_input"),
        (ConflictError("already decided"), 2, 409, "conflict"),
        (ContextLengthError("too long", 900, 512), 2, 422, "invalid_input"),
        (DataError(Path("d.jsonl"), ["d.jsonl:3: not JSON"]), 2, 422, "invalid_input"),
        (CatalogError([Problem("a.yaml", "model", "unknown model")]), 2, 500, "CatalogError"),
        (RunError("it broke"), 1, 500, "RunError"),
        (DatabaseUnavailable("down"), 1, 503, "database_unavailable"),
        (EngineError("engine died"), 1, 500, "EngineError"),
        (ToolTimeoutError("tool 'nap' did not answer"), 1, 500, "ToolTimeoutError"),
        (BudgetExceeded("over", "workflow", 10, 8, 5), 1, 500, "BudgetExceeded"),
        (ApiError(429, "rate_limited", "slow down", {"Retry-After": "2"}), 2, 429, "rate_limited"),
    ],
)
def test_each_error_names_its_exit_code_and_http_status(
    error: CadreError, exit_code: int, status: int, type_name: str
) -> None:
    assert (error.exit_code, error.http_status, error.type_name) == (exit_code, status, type_name)
    again = pickle.loads(pickle.dumps(error))
    assert type(again) is type(error)
    assert (again.message, again.http_status, again.type_name) == (
        error.message,
        status,
        type_name,
    )
    assert dict(again.headers) == dict(error.headers)


def test_an_api_error_keeps_its_headers_apart_from_other_errors() -> None:
    limited = ApiError(429, "rate_limited", "slow down", {"Retry-After": "2"})
    assert dict(limited.headers) == {"Retry-After": "2"}
    assert dict(InputError("x").headers) == {}
    with pytest.raises(TypeError):
        limited.headers["Retry-After"] = "0"  # type: ignore[index]


def test_every_error_class_lives_in_errors_and_is_a_cadre_error() -> None:
    classes = [
        value
        for value in vars(errors).values()
        if isinstance(value, type) and issubclass(value, Exception)
    ]
    assert {c.__name__ for c in classes} >= {"ApiError", "DataError", "ToolTimeoutError"}
    for cls in classes:
        assert issubclass(cls, CadreError), cls
        assert 400 <= cls.http_status < 600, cls


def test_a_missing_library_names_the_module_and_the_command() -> None:
    try:
        import cadre_no_such_module  # type: ignore[import-not-found]  # noqa: F401
    except ImportError as err:
        made = missing_dependency("training adapters needs peft", err)
    assert isinstance(made, UserError) and made.exit_code == 2
    assert made.message == (
        "training adapters needs peft (cadre_no_such_module is missing); run `make setup`"
    )
    other = missing_dependency("the vllm engine needs vLLM", ImportError("x", name="vllm"), "hm")
    assert other.message == "the vllm engine needs vLLM (vllm is missing); hm"


def test_budget_exceeded_pickles_with_its_fields() -> None:
    err = BudgetExceeded("over", "tenant", 100, 90, 20)
    back = pickle.loads(pickle.dumps(err))
    assert type(back) is BudgetExceeded and str(back) == "over"
    assert (back.scope, back.limit, back.used, back.needed, back.exit_code) == (
        "tenant",
        100,
        90,
        20,
        1,
    )


def test_json_that_cannot_be_taken_as_it_is_is_found_where_it_is() -> None:
    assert unfit_json({"claim": "a window 🪟", "n": [1, "ü", 2.5, True, -(2**63)]}) is None
    assert unfit_json({"claim": "bad \ud800"}) == ("claim", SURROGATE)
    assert unfit_json({"a": [1, {"b": "x\udfff"}]}) == ("a/1/b", SURROGATE)
    assert unfit_json({"k\ud800": 1}) == ("k\\ud800", SURROGATE)  # the surrogate escaped
    assert unfit_json("\udc00", "reason") == ("reason", SURROGATE)
    assert unfit_json({"n": 2**63}) == ("n", "is an integer outside 64 bits; send it as a string")
    assert unfit_json({"n": [float("-inf")]}) == ("n/0", "is -inf, which is not a JSON number")
    assert unfit_json({"n": float("nan")}) == ("n", "is nan, which is not a JSON number")
    deep: object = 1
    for _ in range(MAX_JSON_DEPTH):
        deep = [deep]
    assert unfit_json(deep) is None  # the bound itself is taken
    where, why = unfit_json({"d": deep}) or ("", "")
    assert (where, why) == (
        "d/" + "/".join(["0"] * (MAX_JSON_DEPTH - 1)),
        f"nests lists and objects more than {MAX_JSON_DEPTH} deep",
    )
    for _ in range(100_000):  # no recursion: any depth
        deep = [deep]
    assert unfit_json(deep) is not None


def test_a_name_that_signs_must_be_a_printable_name() -> None:
    assert person_name("Rita Sánchez", "--as") == "Rita Sánchez"
    for value, why in (
        ("", "give a name"),
        ("   ", "give a name"),
        ("x" * 201, "at most 200 characters"),
        ("ev\x1b[31mil", "no control characters"),
        ("Rita\nEvil", "no control characters"),
    ):
        with pytest.raises(InputError, match=why):
            person_name(value, "--as")


def test_an_unfit_answer_pickles_with_the_tokens_it_took() -> None:
    err = OutputSchemaError("not JSON", "{oops", 120, 33)
    back = pickle.loads(pickle.dumps(err))
    assert (back.message, back.raw, back.input_tokens, back.output_tokens) == (
        "not JSON",
        "{oops",
        120,
        33,
    )


def test_a_schema_misfit_names_the_deepest_failing_part_under_its_root() -> None:
    schema = {
        "type": "object",
        "properties": {"items": {"type": "array", "items": {"type": "integer"}}},
    }
    assert schema_misfit(schema, {"items": [1, 2]}) is None
    where, why = schema_misfit(schema, {"items": [1, "two"]}, root="order") or ("", "")
    assert where == "order/items/1"
    assert "'two' is not of type 'integer'" in why
    assert schema_misfit(schema, [], root="order", sep=".") == (
        "order",
        "[] is not of type 'object'",
    )
    # the value as a whole, with no root: the caller names the whole
    validator = jsonschema.Draft202012Validator({"type": "string", "maxLength": 2})
    assert schema_misfit(validator, "abc") == ("", "'abc' is too long")
