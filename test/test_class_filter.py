import pytest

from trt_infer_ros.ros.class_filter import ClassFilterError, parse_class_filter

NAMES = ["person", "bicycle", "car", "motorcycle"]


def test_empty_keeps_every_class():
    assert parse_class_filter("", NAMES) is None


def test_names_and_ids_mix():
    assert parse_class_filter("person, 2", NAMES) == frozenset({0, 2})


def test_a_single_id():
    assert parse_class_filter("0", NAMES) == frozenset({0})


@pytest.mark.parametrize("text", [" , ", ",,,,", "   ", "person,", ",car", "person,,car"])
def test_empty_items_are_refused_not_read_as_all(text):
    with pytest.raises(ClassFilterError, match="empty"):
        parse_class_filter(text, NAMES)


@pytest.mark.parametrize("text", ["dog", "4", "-1", "person,zebra", "²", "①", "٣", "𝟑", "3.0",
                                  "1" * 5000, "0" * 4301, "+1", "0x1"])
def test_unknown_or_non_ascii_entries_are_rejected_with_the_reason(text):
    with pytest.raises(ClassFilterError, match="neither a class name") as err:
        parse_class_filter(text, NAMES)
    assert len(str(err.value)) < 300
