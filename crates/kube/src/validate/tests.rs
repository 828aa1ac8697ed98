//! Each rule, through a small manifest.

use crate::{KubeError, load_str};

/// The field paths `text` is refused for, or empty if it loads.
fn refused(text: &str) -> Vec<String> {
    match load_str(text, "t.yaml", true) {
        Ok(_) => Vec::new(),
        Err(KubeError::Invalid { errors, .. }) => {
            errors.paths().iter().map(|p| p.to_string()).collect()
        }
        Err(other) => panic!("not a validation error: {other}"),
    }
}

fn pod(spec: &str) -> String {
    format!("apiVersion: v1\nkind: Pod\nmetadata:\n  name: p\nspec:\n{spec}")
}

const C: &str = "  containers:\n  - name: c\n    image: busybox\n";

#[test]
fn a_plain_pod_is_fine() {
    assert!(refused(&pod(C)).is_empty());
}

#[test]
fn bad_quantity_names_the_resource() {
    let text = pod(
        "  containers:\n  - name: c\n    image: i\n    resources:\n      limits:\n        memory: 5Gx\n",
    );
    let err = load_str(&text, "q.yaml", true)
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert_eq!(
        err,
        "q.yaml document 1: Pod \"p\" is invalid: spec.containers[0].resources.limits.memory: invalid quantity \"5Gx\" has an unknown suffix \"Gx\" (use n, u, m, k, M, G, T, P, E, Ki, Mi, Gi, Ti, Pi, Ei or an exponent like 1e3)"
    );
}

#[test]
fn negative_quantity_and_request_above_limit() {
    let text = pod(
        "  containers:\n  - name: c\n    image: i\n    resources:\n      limits:\n        cpu: 500m\n        memory: -1\n      requests:\n        cpu: '1'\n",
    );
    assert_eq!(
        refused(&text),
        [
            "spec.containers[0].resources.limits.memory",
            "spec.containers[0].resources.requests.cpu"
        ]
    );
}

#[test]
fn duplicate_container_names_across_init_and_app() {
    let text = pod(
        "  initContainers:\n  - name: c\n    image: i\n  containers:\n  - name: c\n    image: i\n  - name: c\n    image: i\n",
    );
    assert_eq!(
        refused(&text),
        ["spec.containers[0].name", "spec.containers[1].name"]
    );
}

#[test]
fn missing_and_bad_names_and_images() {
    let text = pod("  containers:\n  - image: i\n  - name: Web_1\n  - name: ok\n    image: '  '\n");
    assert_eq!(
        refused(&text),
        [
            "spec.containers[0].name",
            "spec.containers[1].name",
            "spec.containers[1].image",
            "spec.containers[2].image"
        ]
    );
    assert_eq!(refused(&pod("  containers: []\n")), ["spec.containers"]);
    let bad_pod_name = pod(C).replace("name: p", "name: my.pod");
    assert_eq!(refused(&bad_pod_name), ["metadata.name"]);
    let nameless = pod(C).replace("  name: p\n", "  labels: {}\n");
    assert_eq!(refused(&nameless), ["metadata.name"]);
    let dotted_map = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: my.config\n  namespace: Bad\ndata:\n  a/b: x\n";
    assert_eq!(refused(dotted_map), ["metadata.namespace", "data.a/b"]);
}

#[test]
fn ports_out_of_range() {
    let text = pod(
        "  containers:\n  - name: c\n    image: i\n    ports:\n    - containerPort: 0\n    - containerPort: 80\n      hostPort: 70000\n    - containerPort: 65535\n      hostPort: 0\n      protocol: HTTP\n",
    );
    assert_eq!(
        refused(&text),
        [
            "spec.containers[0].ports[0].containerPort",
            "spec.containers[0].ports[1].hostPort",
            "spec.containers[0].ports[2].protocol"
        ]
    );
}

#[test]
fn restart_policies_per_kind() {
    assert_eq!(
        refused(&pod(&format!("  restartPolicy: Sometimes\n{C}"))),
        ["spec.restartPolicy"]
    );
    let job = |policy: &str| {
        format!(
            "apiVersion: batch/v1\nkind: Job\nmetadata:\n  name: j\nspec:\n  template:\n    spec:\n{policy}      containers:\n      - name: c\n        image: i\n"
        )
    };
    assert!(refused(&job("      restartPolicy: Never\n")).is_empty());
    assert_eq!(
        refused(&job("      restartPolicy: Always\n")),
        ["spec.template.spec.restartPolicy"]
    );
    assert_eq!(refused(&job("")), ["spec.template.spec.restartPolicy"]);
    let deployment = |policy: &str| {
        format!(
            "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: d\nspec:\n  selector:\n    matchLabels: {{app: d}}\n  template:\n    metadata:\n      labels: {{app: d}}\n    spec:\n{policy}      containers:\n      - name: c\n        image: i\n"
        )
    };
    assert!(refused(&deployment("")).is_empty());
    assert!(refused(&deployment("      restartPolicy: Always\n")).is_empty());
    assert_eq!(
        refused(&deployment("      restartPolicy: OnFailure\n")),
        ["spec.template.spec.restartPolicy"]
    );
}

#[test]
fn volume_mounts_need_a_volume() {
    let text = pod(
        "  volumes:\n  - name: data\n    emptyDir: {}\n  - name: data\n    emptyDir:\n      sizeLimit: 1Qi\n  containers:\n  - name: c\n    image: i\n    volumeMounts:\n    - name: data\n      mountPath: /d\n    - name: logs\n      mountPath: /d\n",
    );
    assert_eq!(
        refused(&text),
        [
            "spec.volumes[1].name",
            "spec.volumes[1].emptyDir.sizeLimit",
            "spec.containers[0].volumeMounts[1].name",
            "spec.containers[0].volumeMounts[1].mountPath",
        ]
    );
}

#[test]
fn probes_need_exactly_one_handler() {
    let text = pod(
        "  containers:\n  - name: c\n    image: i\n    ports:\n    - containerPort: 80\n      name: http\n    livenessProbe:\n      periodSeconds: 1\n    readinessProbe:\n      exec: {command: ['true']}\n      tcpSocket: {port: 80}\n    startupProbe:\n      httpGet: {port: http}\n    lifecycle:\n      preStop:\n        httpGet: {port: admin}\n",
    );
    assert_eq!(
        refused(&text),
        [
            "spec.containers[0].livenessProbe",
            "spec.containers[0].readinessProbe",
            "spec.containers[0].lifecycle.preStop.httpGet.port",
        ]
    );
}

#[test]
fn probe_and_handler_values_are_checked_as_the_api_server_does() {
    let text = pod(concat!(
        "  terminationGracePeriodSeconds: 5\n",
        "  initContainers:\n",
        "  - name: setup\n    image: i\n    readinessProbe: {exec: {command: ['true']}}\n",
        "  - name: side\n    image: i\n    restartPolicy: Always\n",
        "    readinessProbe: {exec: {command: ['true']}}\n",
        "  containers:\n  - name: c\n    image: i\n",
        "    livenessProbe:\n      successThreshold: 2\n",
        "      httpGet:\n        port: 80\n        scheme: FTP\n        host: 'a/b'\n",
        "        path: 'a b'\n",
        "        httpHeaders: [{name: 'X Y', value: ok}, {name: X, value: \"a\\r\\nB: c\"}]\n",
        "    readinessProbe: {successThreshold: 2, grpc: {port: 8080}}\n",
        "    startupProbe: {exec: {command: []}}\n",
        "    lifecycle:\n",
        "      preStop: {sleep: {seconds: 6}}\n",
        "      postStart: {sleep: {seconds: 5}}\n",
    ));
    assert_eq!(
        refused(&text),
        [
            "spec.initContainers[0].readinessProbe",
            "spec.containers[0].livenessProbe.httpGet.scheme",
            "spec.containers[0].livenessProbe.httpGet.host",
            "spec.containers[0].livenessProbe.httpGet.path",
            "spec.containers[0].livenessProbe.httpGet.httpHeaders[0].name",
            "spec.containers[0].livenessProbe.httpGet.httpHeaders[1].value",
            "spec.containers[0].livenessProbe.successThreshold",
            "spec.containers[0].startupProbe.exec.command",
            "spec.containers[0].lifecycle.preStop.sleep.seconds",
        ]
    );
}

#[test]
fn negative_grace_period_and_replicas() {
    assert_eq!(
        refused(&pod(&format!("  terminationGracePeriodSeconds: -1\n{C}"))),
        ["spec.terminationGracePeriodSeconds"]
    );
    let rs = "apiVersion: apps/v1\nkind: ReplicaSet\nmetadata:\n  name: r\nspec:\n  replicas: -2\n  selector:\n    matchLabels: {app: r}\n  template:\n    metadata:\n      labels: {app: r}\n    spec:\n      containers:\n      - name: c\n        image: i\n";
    assert_eq!(refused(rs), ["spec.replicas"]);
}

#[test]
fn deployment_selector_must_match_template() {
    let deployment = |selector: &str| {
        format!(
            "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: d\nspec:\n  selector:\n{selector}  template:\n    metadata:\n      labels: {{app: d, tier: web}}\n    spec:\n      containers:\n      - name: c\n        image: i\n"
        )
    };
    assert!(refused(&deployment("    matchLabels: {app: d}\n")).is_empty());
    assert_eq!(
        refused(&deployment("    matchLabels: {app: e}\n")),
        ["spec.template.metadata.labels"]
    );
    assert_eq!(
        refused(&deployment("    matchLabels: {}\n")),
        ["spec.selector"]
    );
    let expressions = "    matchExpressions:\n    - {key: tier, operator: In, values: [web, api]}\n    - {key: canary, operator: DoesNotExist}\n";
    assert!(refused(&deployment(expressions)).is_empty());
    let not_in = "    matchExpressions:\n    - {key: tier, operator: NotIn, values: [web]}\n";
    assert_eq!(
        refused(&deployment(not_in)),
        ["spec.template.metadata.labels"]
    );
    let bad_op = "    matchExpressions:\n    - {key: tier, operator: Near, values: [web]}\n";
    assert_eq!(
        refused(&deployment(bad_op)),
        ["spec.selector.matchExpressions[0].operator"]
    );
}

#[test]
fn env_field_refs() {
    let env = |entry: &str| {
        pod(&format!(
            "  containers:\n  - name: c\n    image: i\n    env:\n    - name: X\n      valueFrom:\n{entry}"
        ))
    };
    for good in [
        "metadata.name",
        "metadata.namespace",
        "metadata.uid",
        "status.podIP",
        "status.hostIP",
        "spec.nodeName",
        "metadata.labels['app']",
    ] {
        let text = env(&format!("        fieldRef: {{fieldPath: \"{good}\"}}\n"));
        assert!(refused(&text).is_empty(), "{good}");
    }
    let text = env("        fieldRef: {fieldPath: spec.hostname}\n");
    assert_eq!(
        refused(&text),
        ["spec.containers[0].env[0].valueFrom.fieldRef.fieldPath"]
    );
    let text = env(
        "        resourceFieldRef: {resource: limits.gpu}\n        fieldRef: {fieldPath: metadata.name}\n",
    );
    assert_eq!(
        refused(&text),
        [
            "spec.containers[0].env[0].valueFrom",
            "spec.containers[0].env[0].valueFrom.resourceFieldRef.resource"
        ]
    );
}

#[test]
fn all_errors_on_one_line() {
    let text = pod("  terminationGracePeriodSeconds: -5\n  containers:\n  - name: c\n");
    let err = load_str(&text, "t.yaml", true)
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert_eq!(
        err,
        "t.yaml document 1: Pod \"p\" is invalid: spec.terminationGracePeriodSeconds: must not be negative (got -5); spec.containers[0].image: required"
    );
}

/// A Job with `spec` lines (indented two spaces) and `restart`.
fn job_with(spec: &str, restart: &str) -> String {
    format!(
        "apiVersion: batch/v1\nkind: Job\nmetadata:\n  name: j\nspec:\n{spec}  template:\n    spec:\n      restartPolicy: {restart}\n      containers:\n      - name: main\n        image: i\n"
    )
}

#[test]
fn indexed_job_needs_completions_and_a_known_mode() {
    let ok = job_with("  completionMode: Indexed\n  completions: 3\n", "Never");
    assert!(refused(&ok).is_empty());
    assert_eq!(
        refused(&job_with("  completionMode: Indexed\n", "Never")),
        ["spec.completions"]
    );
    assert_eq!(
        refused(&job_with("  completionMode: Sorted\n", "Never")),
        ["spec.completionMode"]
    );
    assert_eq!(
        refused(&job_with("  backoffLimitPerIndex: 1\n", "Never")),
        ["spec.backoffLimitPerIndex"]
    );
    assert_eq!(
        refused(&job_with(
            "  completionMode: Indexed\n  completions: 2\n  backoffLimitPerIndex: 1\n  maxFailedIndexes: 3\n",
            "Never"
        )),
        ["spec.maxFailedIndexes"]
    );
}

#[test]
fn pod_failure_policy_rules_are_checked() {
    let policy = |rules: &str| format!("  podFailurePolicy:\n    rules:\n{rules}");
    let good = policy(
        "    - action: FailJob\n      onExitCodes:\n        containerName: main\n        operator: In\n        values: [42]\n    - action: Ignore\n      onPodConditions:\n      - type: DisruptionTarget\n",
    );
    assert!(refused(&job_with(&good, "Never")).is_empty());
    assert_eq!(
        refused(&job_with(&good, "OnFailure")),
        ["spec.template.spec.restartPolicy"]
    );
    let bad = policy(
        "    - action: Retry\n      onExitCodes:\n        containerName: other\n        operator: Is\n        values: [0, 0]\n    - action: Count\n",
    );
    assert_eq!(
        refused(&job_with(&bad, "Never")),
        [
            "spec.podFailurePolicy.rules[0].action",
            "spec.podFailurePolicy.rules[0].onExitCodes.containerName",
            "spec.podFailurePolicy.rules[0].onExitCodes.operator",
            "spec.podFailurePolicy.rules[0].onExitCodes.values",
            "spec.podFailurePolicy.rules[1]",
        ]
    );
    let zero = policy(
        "    - action: FailJob\n      onExitCodes:\n        operator: In\n        values: [0]\n",
    );
    assert_eq!(
        refused(&job_with(&zero, "Never")),
        ["spec.podFailurePolicy.rules[0].onExitCodes.values"]
    );
    let fail_index = policy(
        "    - action: FailIndex\n      onExitCodes:\n        operator: NotIn\n        values: [1]\n",
    );
    assert_eq!(
        refused(&job_with(&fail_index, "Never")),
        ["spec.podFailurePolicy.rules[0].action"]
    );
}
