//! peapod's Kubernetes manifests: Pod, Job, Deployment, ReplicaSet,
//! ConfigMap and Secret objects loaded from YAML or JSON into the
//! `k8s-openapi` models, checked for unknown fields and invalid values, plus
//! what running them needs: QoS classes, cpu shares and quotas, quantities,
//! and Kubernetes-style generated names.

mod decode;
mod error;
mod load;
pub mod names;
mod object;
pub mod qos;
pub mod quantity;
mod strict;
pub mod validate;

pub use error::{KubeError, Location};
pub use k8s_openapi;
pub use load::{load_path, load_path_with, load_str};
pub use object::{DEFAULT_NAMESPACE, Kind, Object};
