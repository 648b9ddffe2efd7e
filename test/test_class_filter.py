import pytest

from trt_infer_ros.ros.class_filter import ClassFilterError, parse_class_filter

NAMES = ["person", "bicycle", "car"]


def test_empty_keeps_every_class():
    assert parse_class_filter("", NAMES) is None
    assert parse_class_filter(" , ", NAMES) is None


def test_names_and_ids_mix():
    assert parse_class_filter("person, 2", NAMES) == frozenset({0, 2})


@pytest.mark.parametrize("text", ["dog", "3", "-1", "person,zebra"])
def test_unknown_entries_are_rejected_with_the_reason(text):
    with pytest.raises(ClassFilterError, match="neither a class name"):
        parse_class_filter(text, NAMES)
