//! The SealedSecret a Secret is written for, checked again right before the write.
//!
//! A reconcile reads the SealedSecret, may wait for an unseal thread, unseals, reads the
//! Secret: by then the SealedSecret may have been deleted (or deleted and created again). A
//! Secret written for it now would outlive it until the garbage collector comes by, and be
//! refused to a SealedSecret created again under that name. One metadata-only read of the
//! SealedSecret after the Secret was read and right before it is written closes that window to
//! the time of one request; [`incarnation`](crate::incarnation) decides on what it returns.

use kube::api::{Api, ApiResource, DynamicObject};
use sealbox_crds::SealedSecret;

use crate::error::{Error, Result};
use crate::incarnation::is_current;
use crate::object::ObjectKey;
use crate::reconcile::context::Context;

/// The incarnation (`uid`) of SealedSecret `key` a reconcile works for.
pub(super) struct Owner<'a> {
    api: Api<DynamicObject>,
    key: &'a ObjectKey,
    uid: &'a str,
}

impl<'a> Owner<'a> {
    pub(super) fn new(ctx: &Context, key: &'a ObjectKey, uid: &'a str) -> Self {
        // Dynamic, not typed: only its metadata is read, whatever its spec holds.
        let resource = ApiResource::erase::<SealedSecret>(&());
        let api = Api::namespaced_with(ctx.client.clone(), &key.namespace, &resource);
        Owner { api, key, uid }
    }

    pub(super) fn uid(&self) -> &'a str {
        self.uid
    }

    /// Whether the SealedSecret is still this incarnation and not being deleted (a
    /// metadata-only GET).
    pub(super) async fn is_current(&self) -> Result<bool> {
        let found = self
            .api
            .get_metadata_opt(&self.key.name)
            .await
            .map_err(|source| Error::GetSealedSecret {
                sealed_secret: self.key.to_string(),
                source,
            })?;
        Ok(is_current(found.as_ref().map(|m| &m.metadata), self.uid))
    }
}
