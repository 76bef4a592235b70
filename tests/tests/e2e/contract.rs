//! The contract other languages read from `ctl` (issue 9): `ctl abi --json` prints the compiled
//! record layouts, `ctl iox2-config` the deployment's iceoryx2 config as a file iceoryx2 (and so
//! the `iox2` CLI) loads. The Python package's tests compare both with its own side.

use framebus_common::ipc::{deployment_root, iceoryx_config};
use framebus_common::names::shm_prefix;
use framebus_e2e::{synthetic_camera, TestDeployment, DEADLINE};
use iceoryx2::config::Config;
use iceoryx2::prelude::*;

/// `ctl abi --json` lists every record with its type name, size and fields; no config needed.
#[test]
fn ctl_abi_prints_the_compiled_layouts() {
    let (code, out, err) = framebus_e2e::Proc::output("ctl", &["--config", "/nonexistent.toml", "abi", "--json"]);
    assert_eq!(code, Some(0), "{err}");
    let value: serde_json::Value = serde_json::from_str(&out).expect("JSON");
    let layouts = value["layouts"].as_array().expect("layouts");
    let header = layouts.iter().find(|l| l["name"] == "FrameHeader").expect("FrameHeader");
    assert_eq!(header["type_name"], "framebus::FrameHeader");
    assert_eq!(header["size"], 88);
    assert_eq!(header["fields"][2], serde_json::json!({"name": "frame_id", "offset": 8, "size": 8, "type": "u64"}));
    let names: Vec<&str> = layouts.iter().filter_map(|l| l["name"].as_str()).collect();
    assert_eq!(names, ["FrameHeader", "ControlRequest", "ControlReply", "ResultBox", "ResultRecord"]);
}

/// The TOML `ctl iox2-config --output` writes is the deployment's config as iceoryx2 loads it,
/// and it sees the services of a running capture.
#[test]
fn ctl_iox2_config_writes_a_file_iceoryx2_loads() {
    let d = TestDeployment::new(&synthetic_camera("cam0", 320, 240, 30));
    let file = d.dir.path().join("config").join("iceoryx2.toml");
    let (code, out, err) = d.ctl(&["iox2-config", "--output", file.to_str().expect("utf-8")]);
    assert_eq!(code, Some(0), "{out}{err}");
    let path = FilePath::new(file.to_str().expect("utf-8").as_bytes()).expect("file path");
    let loaded = Config::from_file(&path).expect("iceoryx2 loads the file");
    assert_eq!(loaded, iceoryx_config(&d.name).expect("config"));
    assert_eq!(loaded.global.prefix.to_string(), shm_prefix(&d.name));
    assert_eq!(loaded.global.root_path().to_string(), deployment_root(&d.name));

    let mut capture = d.spawn("capture", &[]);
    capture.wait_stderr(DEADLINE, "capturing");
    let mut names = Vec::new();
    ipc::Service::list(&loaded, |s| {
        names.push(s.static_details.name().to_string());
        CallbackProgression::Continue
    })
    .expect("list services");
    assert!(names.contains(&format!("framebus/{}/cam0/frames", d.name)), "{names:?}");
    assert_eq!(capture.terminate(), Some(0));
    d.assert_no_leftovers();

    let (code, out, _) = d.ctl(&["iox2-config", "--json"]);
    assert_eq!(code, Some(0));
    let value: serde_json::Value = serde_json::from_str(&out).expect("JSON");
    assert_eq!(value["prefix"], shm_prefix(&d.name));
    assert_eq!(value["config"]["global"]["root-path"], deployment_root(&d.name));
}
