//! sealbox-controller: the in-cluster controller.
