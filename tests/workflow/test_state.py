"""The state's reducers: usage summed per specialist, map parts merged by node and index, dicts
updated key by key."""

from __future__ import annotations

from orchestrator.workflow.state import add_usage, merge, merge_parts


def test_usage_is_summed_per_specialist_and_field_without_touching_the_inputs() -> None:
    left = {"extractor": {"calls": 1, "input_tokens": 10}}
    right = {"extractor": {"calls": 1, "output_tokens": 4}, "decider": {"calls": 1}}
    assert add_usage(left, right) == {
        "extractor": {"calls": 2, "input_tokens": 10, "output_tokens": 4},
        "decider": {"calls": 1},
    }
    assert left == {"extractor": {"calls": 1, "input_tokens": 10}}
    assert add_usage(None, None) == {} and add_usage(None, right) == right


def test_map_parts_merge_by_node_and_index_and_none_resets_a_node() -> None:
    parts = merge_parts({"m": {0: "a"}}, {"m": {1: "b"}, "p": {0: "x"}})
    assert parts == {"m": {0: "a", 1: "b"}, "p": {0: "x"}}
    assert merge_parts(parts, {"m": None}) == {"p": {0: "x"}}
    assert merge_parts(None, {"gone": None}) == {}


def test_merge_updates_key_by_key() -> None:
    assert merge({"a": 1, "b": 2}, {"b": 3}) == {"a": 1, "b": 3}
    assert merge(None, None) == {}
