"""The contract with the Rust side, pinned both ways: record layouts (`ctl abi --json`) and the
deployment's iceoryx2 config (`ctl iox2-config --json`). A change on one side that the other
does not follow fails here."""

import ctypes
import json
import subprocess

import iceoryx2 as iox2
import pytest

import framebus
from framebus import _ipc
from framebus import _abi

from conftest import binary, synthetic_camera


def _rust_type(ctype) -> str:
    """The Rust type `ctl abi` prints for a ctypes field type."""
    simple = {
        ctypes.c_uint8: "u8",
        ctypes.c_uint32: "u32",
        ctypes.c_uint64: "u64",
        ctypes.c_float: "f32",
        ctypes.c_double: "f64",
    }
    if ctype in simple:
        return simple[ctype]
    if issubclass(ctype, ctypes.Array):
        return f"[{_rust_type(ctype._type_)}; {ctype._length_}]"
    if issubclass(ctype, ctypes.Structure):
        return {v: k for k, v in _abi.LAYOUTS.items()}[ctype]
    raise AssertionError(f"no Rust type known for {ctype}")


def test_every_record_layout_matches_the_rust_one_field_by_field():
    out = subprocess.run([binary("ctl"), "abi", "--json"], capture_output=True, text=True, check=True).stdout
    rust = {layout["name"]: layout for layout in json.loads(out)["layouts"]}
    assert set(rust) == set(_abi.LAYOUTS), "a record exists on one side only"
    for name, struct in _abi.LAYOUTS.items():
        r = rust[name]
        assert struct.type_name() == r["type_name"], name
        assert ctypes.sizeof(struct) == r["size"], name
        assert ctypes.alignment(struct) == r["alignment"], name
        py_fields = [
            {"name": f, "offset": getattr(struct, f).offset, "size": getattr(struct, f).size, "type": _rust_type(t)}
            for f, t in struct._fields_
        ]
        assert py_fields == r["fields"], f"{name}: the ctypes fields differ from the Rust struct"


def _config_tree(obj):
    """An iceoryx2 config object (or part) as the nested dict Rust serialises: attribute names
    as kebab-case keys, names and paths as strings, durations as {secs, nanos}."""
    if isinstance(obj, (bool, int, float, str)) or obj is None:
        return obj
    if hasattr(obj, "to_string"):
        return obj.to_string()
    if hasattr(obj, "as_secs") and hasattr(obj, "subsec_nanos"):
        return {"secs": obj.as_secs(), "nanos": obj.subsec_nanos()}
    names = [n for n in dir(obj) if not n.startswith("_") and not callable(getattr(obj, n))]
    if not names or all(type(getattr(obj, n)) is type(obj) for n in names):
        return str(obj).split(".")[-1]  # an enum: its variant name
    return {n.removesuffix("_cfg").replace("_", "-"): _config_tree(getattr(obj, n)) for n in names}


def _common(py, rust, path=""):
    """Compares every key both sides have; returns how many leaves were compared."""
    if rust is None:
        return 0  # not set on the Rust side (the bindings show a placeholder)
    if isinstance(py, dict) and isinstance(rust, dict):
        return sum(_common(py[k], rust[k], f"{path}.{k}") for k in py.keys() & rust.keys())
    if isinstance(rust, str) and not isinstance(py, str):
        py = str(py)
    assert py == rust, f"iceoryx2 config differs at {path}: Python {py!r}, Rust {rust!r}"
    return 1


def test_python_opens_services_with_the_rust_settings():
    out = subprocess.run([binary("ctl"), "abi", "--json"], capture_output=True, text=True, check=True).stdout
    rust = json.loads(out)["services"]
    assert rust == {
        "control_max_clients": _ipc.CONTROL_MAX_CLIENTS,
        "results_max_publishers": _ipc.RESULTS_MAX_PUBLISHERS,
        "results_max_subscribers": _ipc.RESULTS_MAX_SUBSCRIBERS,
        "results_queue": _ipc.RESULTS_QUEUE,
    }


def test_python_derives_the_same_iceoryx2_config_as_ctl(deployment):
    d = deployment(synthetic_camera())
    code, out, err = d.ctl("iox2-config", "--json")
    assert code == 0, err
    rust = json.loads(out)
    settings = framebus.iceoryx2_settings(d.name)
    assert settings == {"prefix": rust["prefix"], "root_path": rust["root_path"]}
    assert str(framebus.load_config(d.config).state_dir) == rust["state_dir"]
    py = _config_tree(framebus.iceoryx_config(d.name))
    assert py["global"]["prefix"] == rust["config"]["global"]["prefix"]
    assert py["global"]["root-path"] == rust["config"]["global"]["root-path"]
    compared = _common(py["global"], rust["config"]["global"], "global")
    compared += _common(py["defaults"], rust["config"]["defaults"], "defaults")
    # Every global setting Rust has is compared (the bindings expose them all).
    assert compared > 30, compared


def test_the_toml_written_by_ctl_is_what_iceoryx2_loads(deployment, tmp_path):
    d = deployment(synthetic_camera())
    target = tmp_path / "config" / "iceoryx2.toml"
    code, out, err = d.ctl("iox2-config", "--output", target)
    assert code == 0, err
    loaded = iox2.config.from_file(iox2.FilePath.new(str(target)))
    settings = framebus.iceoryx2_settings(d.name)
    assert loaded.global_cfg.prefix.to_string() == settings["prefix"]
    assert loaded.global_cfg.root_path.to_string() == settings["root_path"]


def test_a_capture_of_the_deployment_is_visible_with_the_written_config(deployment, tmp_path):
    """What `iox2 service list` does with the file: list the deployment's services."""
    d = deployment(synthetic_camera())
    d.capture()
    target = tmp_path / "iox2.toml"
    assert d.ctl("iox2-config", "--output", target)[0] == 0
    config = iox2.config.from_file(iox2.FilePath.new(str(target)))
    names = {str(s.name().to_string()) for s in iox2.Service.list(config, iox2.ServiceType.Ipc)}
    assert f"framebus/{d.name}/cam0/frames" in names, names
    d.procs[0].terminate()
    d.assert_no_leftovers()
