//! Admission: the objects under review and the AdmissionReview envelope.

mod object;
pub mod review;

pub use object::{
    ContainerImage, ContainerKind, KINDS, Meta, ObjectError, OldImages, RawObject, SpecChange,
    Workload, pod_spec_pointer,
};
