use super::*;

fn process(extra: &str) -> Process {
    let mut v: serde_json::Value = serde_json::from_str(&format!(
        r#"{{"cwd":"/","args":["sh"],"user":{{"uid":0,"gid":0}}{extra}}}"#
    ))
    .unwrap();
    accept_spec_flag_names(&mut v);
    serde_json::from_value(v).unwrap()
}

fn sched_err(json: &str) -> String {
    scheduler(&process(&format!(r#","scheduler":{json}"#)))
        .unwrap_err()
        .to_string()
}

#[test]
fn scheduler_fields_become_sched_attr() {
    let p = process(
        r#","scheduler":{"policy":"SCHED_DEADLINE","flags":["SCHED_FLAG_RESET_ON_FORK","SCHED_FLAG_DL_OVERRUN"],"runtime":42000,"deadline":100000,"period":1000000}"#,
    );
    let s = scheduler(&p).unwrap().unwrap();
    assert_eq!((s.policy, s.flags), (6, 0x05));
    assert_eq!((s.runtime, s.deadline, s.period), (42000, 100000, 1000000));
    let p = process(r#","scheduler":{"policy":"SCHED_FIFO","priority":10}"#);
    let s = scheduler(&p).unwrap().unwrap();
    assert_eq!(
        (s.policy, s.priority, s.name.as_str()),
        (1, 10, "SCHED_FIFO")
    );
    assert_eq!(scheduler(&process("")).unwrap(), None);
}

#[test]
fn bad_scheduler_fields_are_named() {
    assert!(sched_err(r#"{"policy":"SCHED_BATCH","priority":3}"#).contains("priority 3"));
    assert!(sched_err(r#"{"policy":"SCHED_RR"}"#).contains("between 1 and 99"));
    assert!(sched_err(r#"{"policy":"SCHED_OTHER","nice":20}"#).contains("nice 20"));
    assert!(sched_err(r#"{"policy":"SCHED_ISO"}"#).contains("SCHED_ISO"));
    assert!(sched_err(r#"{"policy":"SCHED_OTHER","runtime":5}"#).contains("SCHED_DEADLINE only"));
    let e = sched_err(r#"{"policy":"SCHED_DEADLINE","runtime":5,"deadline":4}"#);
    assert!(e.contains("runtime <= deadline"), "{e}");
}

#[test]
fn io_priority_packs_class_and_level() {
    let p = process(r#","ioPriority":{"class":"IOPRIO_CLASS_IDLE","priority":4}"#);
    assert_eq!(io_priority(&p).unwrap(), Some(3 << 13 | 4));
    let p = process(r#","ioPriority":{"class":"IOPRIO_CLASS_BE","priority":8}"#);
    let e = io_priority(&p).unwrap_err().to_string();
    assert!(e.contains("process.ioPriority.priority 8"), "{e}");
}

#[test]
fn cpu_lists_parse_and_bad_ones_are_named() {
    let l = bit_list("0-3,7,64", "f", "CPU").unwrap();
    assert_eq!(l.mask, vec![0x8f, 1]);
    for bad in ["", "a", "3-1", "1,", "99999", "-1"] {
        let e = bit_list(bad, "process.execCPUAffinity.final", "CPU")
            .unwrap_err()
            .to_string();
        assert!(e.contains("process.execCPUAffinity.final"), "{bad}: {e}");
    }
    let p = process(r#","execCPUAffinity":{"initial":"1","final":"0-1"}"#);
    let a = exec_cpu_affinity(&p).unwrap();
    assert_eq!(a.initial.unwrap().mask, vec![2]);
    assert_eq!(a.last.unwrap().mask, vec![3]);
}

fn mempolicy(json: &str) -> Result<Option<MemPolicyPlan>> {
    let p: LinuxMemoryPolicy = serde_json::from_str(json).unwrap();
    memory_policy(Some(&p))
}

#[test]
fn memory_policy_modes_nodes_and_flags() {
    let m = mempolicy(r#"{"mode":"MPOL_BIND","nodes":"0","flags":["MPOL_F_STATIC_NODES"]}"#)
        .unwrap()
        .unwrap();
    assert_eq!((m.mode, m.nodes.unwrap().mask), (2 | 1 << 15, vec![1]));
    let m = mempolicy(r#"{"mode":"MPOL_LOCAL"}"#).unwrap().unwrap();
    assert_eq!((m.mode, m.nodes), (4, None));
    let err = |j: &str| mempolicy(j).unwrap_err().to_string();
    assert!(err(r#"{"mode":"MPOL_INTERLEAVE"}"#).contains("needs nodes"));
    assert!(err(r#"{"mode":"MPOL_DEFAULT","nodes":"0"}"#).contains("takes no nodes"));
    assert!(err(r#"{"mode":"MPOL_BIND","nodes":"0-x"}"#).contains("linux.memoryPolicy.nodes"));
    let e = err(
        r#"{"mode":"MPOL_BIND","nodes":"0","flags":["MPOL_F_STATIC_NODES","MPOL_F_RELATIVE_NODES"]}"#,
    );
    assert!(e.contains("exclude each other"), "{e}");
}
