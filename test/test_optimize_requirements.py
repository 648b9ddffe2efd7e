"""The optimize commands name a missing library instead of failing later with a traceback."""
import pytest

from trt_infer_ros.optimize.requirements import EXIT_MISSING, missing_modules, require


def test_a_missing_library_is_named_with_what_to_install(capsys):
    assert missing_modules("numpy", "no_such_module_here") == ["no_such_module_here"]
    with pytest.raises(SystemExit) as stop:
        require("trt_infer_ros_int8", "numpy", "no_such_module_here")
    assert stop.value.code == EXIT_MISSING
    err = capsys.readouterr().err
    assert "trt_infer_ros_int8: needs the Python package no_such_module_here" in err
    assert "pip install" in err and "numpy" not in err.split("needs")[1].split(":")[0]


def test_nothing_missing_is_silent(capsys):
    require("trt_infer_ros_int8", "numpy")
    assert capsys.readouterr().err == ""
