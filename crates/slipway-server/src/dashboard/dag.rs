//! Lays a run's builds out as DAG columns: column 0 holds builds without inputs, column n builds
//! whose deepest input is in column n-1. Bypassed builds sit where their inputs put them, so the
//! page shows the gap an untrusted run leaves in the graph.

use std::collections::HashMap;

use serde::Serialize;

use super::views::{BuildView, BypassView};

#[derive(Debug, Clone, Serialize)]
pub struct DagNode {
    pub name: String,
    pub status: String,
    pub needs: Vec<String>,
    pub error: Option<String>,
    pub started_at: Option<String>,
    pub finished_at: Option<String>,
    pub duration: Option<String>,
    pub bypassed: bool,
}

impl DagNode {
    fn build(b: &BuildView) -> DagNode {
        DagNode {
            name: b.name.clone(),
            status: b.status.clone(),
            needs: b.needs.clone(),
            error: b.error.clone(),
            started_at: b.started_at.clone(),
            finished_at: b.finished_at.clone(),
            duration: b.duration.clone(),
            bypassed: false,
        }
    }

    fn bypass(b: &BypassView) -> DagNode {
        DagNode {
            name: b.build.clone(),
            status: "bypassed".to_string(),
            needs: b.inputs_go_to.clone(),
            error: None,
            started_at: None,
            finished_at: None,
            duration: None,
            bypassed: true,
        }
    }
}

/// Columns by depth, each in plan order (builds first, then bypassed ones). Inputs naming no
/// build of the run are ignored, and a cycle (which the config check forbids) is cut rather
/// than looped on.
pub fn columns(builds: &[BuildView], bypassed: &[BypassView]) -> Vec<Vec<DagNode>> {
    let nodes: Vec<DagNode> = builds
        .iter()
        .map(DagNode::build)
        .chain(bypassed.iter().map(DagNode::bypass))
        .collect();
    let index: HashMap<&str, usize> = nodes
        .iter()
        .enumerate()
        .map(|(i, n)| (n.name.as_str(), i))
        .collect();

    let mut level: Vec<Option<usize>> = vec![None; nodes.len()];
    for i in 0..nodes.len() {
        let mut visiting = vec![false; nodes.len()];
        depth(i, &nodes, &index, &mut level, &mut visiting);
    }

    let width = level.iter().flatten().max().map_or(0, |m| m + 1);
    let mut cols: Vec<Vec<DagNode>> = vec![Vec::new(); width];
    for (node, l) in nodes.into_iter().zip(level) {
        cols[l.unwrap_or(0)].push(node);
    }
    cols
}

fn depth(
    i: usize,
    nodes: &[DagNode],
    index: &HashMap<&str, usize>,
    level: &mut [Option<usize>],
    visiting: &mut [bool],
) -> usize {
    if let Some(l) = level[i] {
        return l;
    }
    if visiting[i] {
        return 0;
    }
    visiting[i] = true;
    let mut l = 0;
    for need in &nodes[i].needs {
        if let Some(&j) = index.get(need.as_str()) {
            l = l.max(depth(j, nodes, index, level, visiting) + 1);
        }
    }
    visiting[i] = false;
    level[i] = Some(l);
    l
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b(name: &str, needs: &[&str]) -> BuildView {
        BuildView {
            name: name.into(),
            needs: needs.iter().map(|s| s.to_string()).collect(),
            status: "success".into(),
            error: None,
            started_at: None,
            finished_at: None,
            duration: None,
        }
    }

    fn names(cols: &[Vec<DagNode>]) -> Vec<Vec<&str>> {
        cols.iter()
            .map(|c| c.iter().map(|n| n.name.as_str()).collect())
            .collect()
    }

    #[test]
    fn columns_follow_the_deepest_input() {
        let builds = [
            b("tools", &[]),
            b("kernel", &[]),
            b("apt_repo", &["tools"]),
            b("image", &["apt_repo", "kernel"]),
            b("test", &["image", "tools"]),
        ];
        let bypass = [BypassView {
            build: "publish".into(),
            inputs_go_to: vec!["apt_repo".into()],
        }];
        let cols = columns(&builds, &bypass);
        assert_eq!(
            names(&cols),
            [
                vec!["tools", "kernel"],
                vec!["apt_repo"],
                vec!["image", "publish"],
                vec!["test"]
            ]
        );
        assert!(cols[2][1].bypassed);
        assert_eq!(cols[2][1].status, "bypassed");
    }

    #[test]
    fn unknown_inputs_and_cycles_do_not_hang_or_panic() {
        let builds = [b("a", &["b", "ghost"]), b("b", &["a"]), b("c", &["c"])];
        let cols = columns(&builds, &[]);
        let total: usize = cols.iter().map(Vec::len).sum();
        assert_eq!(total, 3);
        assert!(columns(&[], &[]).is_empty());
    }
}
