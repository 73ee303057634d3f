//! sealbox-tests: in-process Kubernetes API double.
