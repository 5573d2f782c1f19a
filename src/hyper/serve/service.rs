//! [`IntoHyperService`]: a hyper service or a tower service, for
//! [`serve`](super::serve()).

use hyper::body::Incoming;
use hyper::Request;
use hyper_util::service::TowerToHyperService;

/// What [`serve`](super::serve()) can serve: a hyper
/// [`Service`](hyper::service::Service) (`hyper::service::service_fn`) or a
/// tower [`Service`](tower_service::Service) (an axum `Router`, a tonic
/// `Routes`), cloned for every connection.
///
/// The `Marker` parameter ([`ViaHyper`] or [`ViaTower`]) only tells the
/// two blanket implementations apart; it is always inferred.
pub trait IntoHyperService<Marker> {
    /// The hyper service a connection calls.
    type Service: hyper::service::Service<Request<Incoming>> + Clone + Send + 'static;

    /// Makes the hyper service.
    fn into_hyper_service(self) -> Self::Service;
}

/// Marks a hyper service for [`IntoHyperService`].
#[derive(Debug)]
pub enum ViaHyper {}

/// Marks a tower service for [`IntoHyperService`]; served through
/// hyper-util's `TowerToHyperService`.
#[derive(Debug)]
pub enum ViaTower {}

impl<S> IntoHyperService<ViaHyper> for S
where
    S: hyper::service::Service<Request<Incoming>> + Clone + Send + 'static,
{
    type Service = S;

    fn into_hyper_service(self) -> S {
        self
    }
}

impl<S> IntoHyperService<ViaTower> for S
where
    S: tower_service::Service<Request<Incoming>> + Clone + Send + 'static,
{
    type Service = TowerToHyperService<S>;

    fn into_hyper_service(self) -> TowerToHyperService<S> {
        TowerToHyperService::new(self)
    }
}
